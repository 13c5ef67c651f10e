"""A trial's identity and the grid's fingerprint (`reslab.study.identity`): what is trained, not how it runs,
and unchanged by a defaulted field added to the config, so an existing experiment still resumes."""

from __future__ import annotations

import io
from dataclasses import field, make_dataclass
from pathlib import Path

import pytest

from reslab.study import Study, Trial, grid
from reslab.study.identity import changed_values, grid_fingerprint, trial_identity
from reslab.training import Recipe, TrainConfig

# a copy of the config with one more field, at a default that trains exactly what the config trains now
WithNewField = make_dataclass(
    "TrainConfig", [("new_knob", bool, field(default=False))], bases=(TrainConfig,), frozen=True
)
STUDY = Study("identity", "a test study", "cifar10", grid(lr=[0.1]), settings={"model": "cifar_resnet20"})


def test_only_values_that_differ_from_their_defaults_are_hashed() -> None:
    config = TrainConfig("cifar_resnet20", recipe=Recipe(lr=0.05), precision="fp32")
    assert changed_values(config, skip=("precision",)) == {"model": "cifar_resnet20", "recipe": {"lr": 0.05},
                                                           "shortcut": "A"}  # fmt: skip


def test_a_defaulted_field_added_to_the_config_changes_no_identity() -> None:
    def identity(config: TrainConfig, seed: int = 0, profile: str = "smoke", study: Study = STUDY) -> str:
        return trial_identity(Trial("cifar_resnet20", seed, config), study, profile)

    now = identity(TrainConfig("cifar_resnet20"))
    assert identity(WithNewField("cifar_resnet20")) == now
    assert identity(WithNewField("cifar_resnet20", new_knob=True)) != now  # a value that trains differently
    how_it_runs = TrainConfig("cifar_resnet20", workers=1, device="cpu", data_parallel=2, cuda_graph=False)
    assert identity(how_it_runs) == now
    others = [identity(TrainConfig("cifar_resnet20"), seed=1), identity(TrainConfig("cifar_resnet20"), profile="quick"),
              identity(TrainConfig("cifar_resnet20"), study=Study("other", "t", "cifar10", grid(lr=[0.1]))),
              identity(TrainConfig("cifar_resnet20", recipe=Recipe(lr=0.05)))]  # fmt: skip
    assert len({now, *others}) == 5


def test_the_grid_fingerprint_is_a_set_of_identities_and_the_search() -> None:
    trials = STUDY.trials("smoke")
    assert grid_fingerprint(trials[::-1], STUDY, "smoke") == grid_fingerprint(trials, STUDY, "smoke")
    assert grid_fingerprint(trials, STUDY, "smoke") != grid_fingerprint(trials, STUDY, "quick")


@pytest.mark.slow
def test_an_experiment_resumes_after_a_defaulted_field_is_added_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trap this rule removes: a finished experiment, resumed by a reslab whose config has one more field,
    is restored (its trial kept, not re-run) instead of refused as "a different trial grid"."""
    import ray

    import reslab.study.spec
    from reslab.launch.options import RunOptions
    from reslab.launch.run import run_study

    store, out = f"sqlite:///{tmp_path / 'mlflow.db'}", io.StringIO()
    try:
        first = run_study(STUDY, storage=tmp_path, tracking_uri=store, out=out)
        monkeypatch.setattr(reslab.study.spec, "TrainConfig", WithNewField)
        assert "new_knob" in STUDY.trials("smoke")[0].config.to_dict()
        again = run_study(STUDY, storage=tmp_path, tracking_uri=store, options=RunOptions(resume=True), out=out)
    finally:
        ray.shutdown()
    assert "restoring" in out.getvalue()
    assert [(o.status, o.iterations) for o in again.outcomes] == [(o.status, o.iterations) for o in first.outcomes]
    assert [o.status for o in again.outcomes] == ["finished"]
    (trial_folder,) = (tmp_path / "identity-smoke").glob("*/result.json")
    assert len(trial_folder.read_text().splitlines()) == 2  # 24 iterations, a report every 12: none re-run
