"""A net as one value (`reslab.models.ModelSpec`): one way to build it, one name, its multiply-adds."""

from __future__ import annotations

import pytest

from reslab.models import ModelSpec, complexity, create_model
from reslab.training import TrainConfig


def test_a_spec_spells_out_its_shortcut_and_builds_the_net_it_names() -> None:
    assert ModelSpec("cifar_resnet20") == ModelSpec("cifar_resnet20", "A")
    assert ModelSpec("resnet34").shortcut == "B" and ModelSpec("cifar_plain20").shortcut is None
    spec = ModelSpec("cifar_resnet", depth=74)
    assert spec.label == "cifar_resnet74" and ModelSpec("cifar_resnet56").label == "cifar_resnet56"
    built, direct = spec.build(), create_model("cifar_resnet", depth=74)
    assert complexity(built, (3, 32, 32)) == complexity(direct, (3, 32, 32))
    assert spec.build(num_classes=100).fc.out_features == 100


def test_a_config_names_its_net_as_a_spec() -> None:
    assert TrainConfig("cifar_resnet", depth=74, shortcut="B").model_spec == ModelSpec("cifar_resnet", "B", 74)
    assert ModelSpec("cifar_resnet56").multiply_adds() == pytest.approx(125.75e6, rel=0.01)  # the paper's 0.125 G


def test_an_unknown_net_is_refused_when_built_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet35'; valid models: .*resnet34"):
        ModelSpec("resnet35").build()
