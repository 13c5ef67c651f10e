"""The model registry on a real MLflow SQLite store: names, logging, registering, safe loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from reslab.models import create_model
from reslab.tracking import load_model as load
from reslab.tracking.layout import MODEL_ID_TAG, MODEL_TAG
from reslab.tracking.registry import (
    PROGRAM_FILE,
    SPEC_FILE,
    WEIGHTS_FILE,
    ModelNotFound,
    ModelSpec,
    load_folder,
    log_trial_model,
    register_best,
    registered_name,
)
from reslab.training import CheckpointError
from reslab.training.checkpoint import save_checkpoint


def test_registered_names_follow_dataset_model_shortcut() -> None:
    assert registered_name({"dataset": "cifar10", "model": "cifar_resnet110", "shortcut": None}) == (
        "cifar10-cifar_resnet110-A"
    )
    assert registered_name({"dataset": "cifar10", "model": "cifar_resnet20", "shortcut": "B"}) == (
        "cifar10-cifar_resnet20-B"
    )
    assert registered_name({"dataset": "imagenet", "model": "resnet34", "shortcut": None}) == "imagenet-resnet34-B"
    plain = {"dataset": "cifar10", "model": "cifar_plain20", "shortcut": None}
    assert registered_name(plain) == "cifar10-cifar_plain20"  # a plain net has no shortcut to name


def _trained_checkpoint(path: Path, shortcut: str, seed: int) -> torch.nn.Module:
    """A net with non-default weights and BN statistics, saved as a trial checkpoint with its config."""
    torch.manual_seed(seed)
    model = create_model("cifar_resnet20", shortcut=shortcut)
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32))  # train-mode pass: moves the BN running statistics
    config = {"model": "cifar_resnet20", "dataset": "cifar10", "shortcut": shortcut, "normalization": "pixel_mean"}
    save_checkpoint(path, {"model": model.state_dict(), "config": config})
    return model.eval()


def _run(client, experiment_id: str, name: str, test_error: float, checkpoint: Path):
    run = client.create_run(experiment_id, tags={"reslab.registered_name": name})
    client.log_metric(run.info.run_id, "test_error", test_error, step=10)
    log_trial_model(client, run.info.run_id, checkpoint)
    client.set_terminated(run.info.run_id, "FINISHED")
    return client.get_run(run.info.run_id)


def test_the_best_run_is_registered_and_loads_back_predicting_exactly_the_same(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("registry", artifact_location=(tmp_path / "artifacts").as_uri())
    worse = _trained_checkpoint(tmp_path / "worse.pt", "A", seed=1)
    better = _trained_checkpoint(tmp_path / "better.pt", "A", seed=2)
    runs = [
        _run(client, experiment, "cifar10-cifar_resnet20-A", 0.40, tmp_path / "worse.pt"),
        _run(client, experiment, "cifar10-cifar_resnet20-A", 0.30, tmp_path / "better.pt"),
    ]
    assert all(r.data.tags[MODEL_TAG] == "cifar_resnet20" for r in runs)
    # MLflow 3's Logged Models, each linked to its run, and nothing in the runs' own artifacts
    import mlflow

    with mlflow.tracking._tracking_service.utils._use_tracking_uri(uri):
        logged = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    assert sorted(m.model_id for m in logged) == sorted(r.data.tags[MODEL_ID_TAG] for r in runs)
    assert {m.source_run_id for m in logged} == {r.info.run_id for r in runs}
    assert all(m.name == "model" and m.status.to_proto() == 2 for m in logged)  # READY
    assert all(r.outputs.model_outputs[0].model_id == r.data.tags[MODEL_ID_TAG] for r in runs)
    assert not any(client.list_artifacts(r.info.run_id) for r in runs)

    assert register_best(client, runs, {"study": "s"}) == {"cifar10-cifar_resnet20-A": "1"}
    version = client.get_model_version_by_alias("cifar10-cifar_resnet20-A", "best")
    assert version.run_id == runs[1].info.run_id and version.tags["test_error"] == "0.3"
    assert version.source == f"models:/{runs[1].data.tags[MODEL_ID_TAG]}"

    images = torch.randn(8, 3, 32, 32)
    pulled = load("models:/cifar10-cifar_resnet20-A@best", tracking_uri=uri)
    assert not pulled.training
    assert torch.equal(pulled(images), better(images))
    assert not torch.equal(pulled(images), worse(images))
    import mlflow.pytorch  # MLflow's own loader reads the same version (its torch.export program), any batch size

    with mlflow.tracking._tracking_service.utils._use_tracking_uri(uri):
        by_mlflow = mlflow.pytorch.load_model(version.source)
    assert torch.allclose(by_mlflow(images), better(images), atol=1e-5)

    # a second registration of the same configuration moves `best` to the new version
    assert register_best(client, runs[:1], {"study": "t"}) == {"cifar10-cifar_resnet20-A": "2"}
    assert torch.equal(load("models:/cifar10-cifar_resnet20-A@best", tracking_uri=uri)(images), worse(images))
    assert torch.equal(load("models:/cifar10-cifar_resnet20-A/1", tracking_uri=uri)(images), better(images))

    with pytest.raises(ModelNotFound, match="registered: cifar10-cifar_resnet20-A"):
        load("models:/cifar10-cifar_resnet56-A@best", tracking_uri=uri)


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_loading_never_executes_pickled_code(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    spec = ModelSpec("cifar_resnet20", "A", None, 10, (3, 32, 32), "pixel_mean")
    (folder / SPEC_FILE).write_text(spec.to_json())
    marker = tmp_path / "code-ran"
    torch.save({"conv1.weight": _Payload(marker)}, folder / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_folder(folder)
    assert not marker.exists()


def test_a_folder_without_reslab_files_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a reslab model folder"):
        load_folder(tmp_path)


def test_names_made_elsewhere_are_escaped_in_filters_and_quoted_in_the_pull_command(tmp_path: Path) -> None:
    """MLflow accepts any registered name: one with a quote must not break listing, and one with shell syntax
    must not run when its pull command is pasted into a shell."""
    import subprocess

    from mlflow import MlflowClient

    from reslab.dashboard.queries import registered_models
    from reslab.tracking.catalog import registered_versions
    from reslab.tracking.layout import filter_literal

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    names = ["it's", "evil;touch${IFS}MARKER;#", 'say "hi"']
    for name in names:
        client.create_registered_model(name)
        client.create_model_version(name, source=(tmp_path / "nowhere").as_uri(), tags={"test_error": "0.5"})
    assert sorted(v.name for v in registered_versions(client)) == sorted(names)
    table = registered_models(uri)
    assert len(table) == 3
    for pull in table["pull"]:  # pasted into a real shell, with `true` in place of reslab
        subprocess.run(["sh", "-c", pull.replace("reslab models pull", "true", 1)], cwd=tmp_path, check=True)
    assert not (tmp_path / "MARKER").exists()
    assert table.set_index("name").loc["evil;touch${IFS}MARKER;#", "pull"] == (
        "reslab models pull 'evil;touch${IFS}MARKER;#/1' --out models/"
    )
    with pytest.raises(ValueError, match="both kinds of quote"):
        filter_literal("""it's "x" """)


def test_pull_copies_only_the_model_a_run_logged_into_the_store(tmp_path: Path) -> None:
    """A version whose source points elsewhere (MLflow accepts any URI) is refused, and nothing is copied."""
    from mlflow import MlflowClient

    from reslab.tracking.registry import download

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("pull", artifact_location=(tmp_path / "artifacts").as_uri())
    net = _trained_checkpoint(tmp_path / "net.pt", "A", seed=3)
    run = _run(client, experiment, "cifar10-cifar_resnet20-A", 0.3, tmp_path / "net.pt")
    register_best(client, [run], {})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "id_rsa").write_text("private\n")
    client.create_model_version("cifar10-cifar_resnet20-A", source=secrets.as_uri(), run_id=run.info.run_id)
    with pytest.raises(ModelNotFound, match=r"version 2 points at .*secrets, not at the model its run logged"):
        download("cifar10-cifar_resnet20-A/2", tmp_path / "out", uri)
    assert not (tmp_path / "out").exists()  # refused before anything is made
    other = _run(client, experiment, "cifar10-cifar_resnet20-B", 0.3, tmp_path / "net.pt")
    stolen = f"models:/{other.data.tags[MODEL_ID_TAG]}"  # a real Logged Model, but another run's
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        client.create_model_version("cifar10-cifar_resnet20-A", source=stolen, run_id=run.info.run_id)
    with pytest.raises(ModelNotFound, match=r"version 3 points at models:/m-.*, not at the model its run logged"):
        download("cifar10-cifar_resnet20-A/3", tmp_path / "out", uri)

    pulled = download("cifar10-cifar_resnet20-A@best", tmp_path / "good", uri)  # version 1: its run's model
    assert pulled == tmp_path / "good" / "model"
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_folder(pulled)(images), net(images))
    # the weights are stored once: in MLflow's program, which reslab reads as raw tensors
    assert (pulled / PROGRAM_FILE).is_file() and not (pulled / "extra_files" / WEIGHTS_FILE).exists()
    assert download("cifar10-cifar_resnet20-A/1", tmp_path / "good", uri) == pulled  # a second pull replaces it
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == ["model"]


def test_models_logged_before_logged_models_still_register_and_load(tmp_path: Path) -> None:
    """Runs logged by earlier reslab versions hold their model in the run's `model` artifact folder with
    `reslab_weights.pt`; their versions still pull and load."""
    import mlflow.pytorch
    from mlflow import MlflowClient

    from reslab.tracking.registry import download, model_from_checkpoint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("old", artifact_location=(tmp_path / "artifacts").as_uri())
    _trained_checkpoint(tmp_path / "net.pt", "A", seed=4)
    model, spec = model_from_checkpoint(tmp_path / "net.pt")
    folder = tmp_path / "model"
    mlflow.pytorch.save_model(model, str(folder), input_example=torch.zeros(2, 3, 32, 32).numpy())
    (folder / "extra_files").mkdir()
    (folder / "extra_files" / SPEC_FILE).write_text(spec.to_json())
    torch.save(model.state_dict(), folder / "extra_files" / WEIGHTS_FILE)
    run = client.create_run(experiment, tags={"reslab.registered_name": "cifar10-cifar_resnet20-A", MODEL_TAG: "x"})
    client.log_metric(run.info.run_id, "test_error", 0.3, step=10)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id, "FINISHED")
    assert register_best(client, [client.get_run(run.info.run_id)], {}) == {"cifar10-cifar_resnet20-A": "1"}
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_folder(download("cifar10-cifar_resnet20-A", tmp_path / "out", uri))(images), model(images))


def test_a_program_with_a_pickled_weight_is_refused_without_unpickling(tmp_path: Path) -> None:
    """torch.export.load unpickles a weight marked `use_pickle`; reslab's reader refuses it."""
    import json
    import zipfile

    from reslab.tracking.pt2_weights import WEIGHTS_CONFIG, pt2_state_dict

    marker = tmp_path / "code-ran"
    program = tmp_path / "model.pt2"
    import io

    payload = io.BytesIO()
    torch.save(_Payload(marker), payload)
    entry = {"path_name": "weight_0", "is_param": True, "use_pickle": True, "tensor_meta": None}
    with zipfile.ZipFile(program, "w") as archive:
        archive.writestr(f"model/{WEIGHTS_CONFIG}", json.dumps({"config": {"fc.weight": entry}}))
        archive.writestr("model/data/weights/weight_0", payload.getvalue())
    with pytest.raises(CheckpointError, match=r"fc\.weight is pickled"):
        pt2_state_dict(program)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="unreadable"):
        pt2_state_dict(tmp_path / "net.pt2" if (tmp_path / "net.pt2").write_bytes(b"not a zip") else program)
