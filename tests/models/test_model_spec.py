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


def test_the_papers_numbers_are_written_once_and_every_study_takes_them_from_there() -> None:
    """Each net's error lives in `models.paper`; a study's paper column comes from it by the variant's net (a
    residual net's for its own shortcut option), and a study's own entry only adds a number for another net."""
    import runpy

    from conftest import REPO
    from reslab.models.paper import MORE_TEST_ERROR, TEST_ERROR
    from reslab.study import Study, grid

    assert TEST_ERROR[ModelSpec("cifar_resnet110")] == 6.61 and TEST_ERROR[ModelSpec("resnet34", "C")] == 24.19
    shortcuts = Study("s", "t", "imagenet", grid(model=["resnet34"], shortcut=["A", "B", "C"]))
    assert shortcuts.paper == {"resnet34-A": 25.03, "resnet34-B": 24.52, "resnet34-C": 24.19}
    assert shortcuts.paper_more["test_error_10crop_top5"] == {
        "resnet34-A": 7.76,
        "resnet34-B": 7.46,
        "resnet34-C": 7.40,
    }
    assert Study("s", "t", "cifar10", grid(model=["cifar_plain20"])).paper == {}  # the paper gives plain-20 none
    for name in ("cifar_depth", "imagenet_depth", "layer_responses", "plain_vs_residual", "shortcut_ablation"):
        source = (REPO / "studies" / f"{name}.py").read_text()
        assert not any(f"{number}" in source for number in TEST_ERROR.values()), name  # no number copied
        module = runpy.run_path(str(REPO / "studies" / f"{name}.py"), run_name="probe")
        for study in module.get("STUDIES") or (module["STUDY"],):
            assert study.paper, study.name
    depth = runpy.run_path(str(REPO / "studies" / "imagenet_depth.py"), run_name="probe")["STUDY"]
    assert "resnet18" not in depth.paper  # Table 2's ResNet-18 is option A: no number beside a B run
    assert depth.paper_more["test_error_multiscale"] == {
        label: MORE_TEST_ERROR["test_error_multiscale"][ModelSpec(label)]
        for label in ("resnet34", "resnet50", "resnet101", "resnet152")
    }
