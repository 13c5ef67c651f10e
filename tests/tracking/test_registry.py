"""The model registry on a real MLflow SQLite store: names, logging, registering, safe loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from reslab.models import ModelSpec, create_model
from reslab.tracking import load_model as load
from reslab.tracking.layout import MODEL_ID_TAG, MODEL_TAG, STATUS_TAG
from reslab.tracking.registry import (
    PROGRAM_FILE,
    SPEC_FILE,
    ModelNotFound,
    SavedNet,
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
    # every distinct net has its own name (and `@best`): the any-depth builder's depths too
    deep = {"dataset": "cifar10", "model": "cifar_resnet", "shortcut": "A"}
    assert registered_name({**deep, "depth": 74}) == "cifar10-cifar_resnet74-A"
    assert registered_name({**deep, "depth": 92}) == "cifar10-cifar_resnet92-A"
    assert registered_name({**deep, "depth": 56}) == registered_name({**deep, "model": "cifar_resnet56"})  # one net


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
    run = client.create_run(experiment_id, tags={"reslab.registered_name": name, STATUS_TAG: "finished"})
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
    names = {r.info.run_id: f"cifar10-cifar_resnet20-A-{r.info.run_name}" for r in runs}  # not all "model"
    assert all(m.name == names[m.source_run_id] and m.status.to_proto() == 2 for m in logged)  # READY
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
    """A folder offering its weights as a pickle (the format torch.save writes) is not a model reslab loads."""
    folder = tmp_path / "model"
    folder.mkdir()
    spec = SavedNet(ModelSpec("cifar_resnet20", "A"), 10, (3, 32, 32), "pixel_mean")
    (folder / SPEC_FILE).write_text(spec.to_json())
    marker = tmp_path / "code-ran"
    torch.save({"conv1.weight": _Payload(marker)}, folder / "reslab_weights.pt")
    with pytest.raises(CheckpointError, match=f"not a reslab model folder .needs {SPEC_FILE} and {PROGRAM_FILE}"):
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
        f"reslab models pull 'evil;touch${{IFS}}MARKER;#/1' --out models/ --tracking-uri {uri}"
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
    assert (pulled / PROGRAM_FILE).is_file() and not list((pulled / "extra_files").glob("*.pt"))
    assert download("cifar10-cifar_resnet20-A/1", tmp_path / "good", uri) == pulled  # a second pull replaces it
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == ["model"]


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


def _rewrite_program(program: Path, change) -> None:
    """Rewrite a .pt2 archive, passing its weights config and records through `change(config, records)`."""
    import json
    import zipfile

    with zipfile.ZipFile(program) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config_name = next(n for n in entries if n.endswith("model_weights_config.json"))
    folder = config_name[: -len("model_weights_config.json")]
    config = json.loads(entries[config_name])
    records = {name: entries[folder + e["path_name"]] for name, e in config["config"].items()}
    change(config["config"], records)
    entries[config_name] = json.dumps(config).encode()
    for name, entry in config["config"].items():
        entries[folder + entry["path_name"]] = records[name]
    with zipfile.ZipFile(program, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _set(records: dict, name: str, data: bytes) -> None:
    records[name] = data


def _dtype(config: dict, name: str, code: int) -> None:
    config[name]["tensor_meta"]["dtype"] = code


TAMPERING = {
    "a record longer than its sizes": lambda c, r: _set(r, "fc.bias", r["fc.bias"] + bytes(40)),
    "an empty record": lambda c, r: _set(r, "fc.bias", b""),
    "a dtype code changed": lambda c, r: _dtype(c, "fc.weight", 13),
    "a record shorter than its sizes": lambda c, r: _set(r, "stem.0.weight", r["stem.0.weight"][:-4]),
}


def test_pull_never_deletes_checks_the_digest_and_damaged_files_are_checkpoint_errors(tmp_path: Path) -> None:
    """A pull writes a new folder or finds the same version there; it refuses anything else in `--out/model`
    (a folder of yours, a link, a file, another version) and keeps it. A version carries its weights' SHA-256,
    which the pull checks against the store's files and a load checks against the pulled files; each
    consistent edit of the program, and a spec the weights do not fit, is a CheckpointError naming the file."""
    import json
    import shutil
    import subprocess
    import sys

    from mlflow import MlflowClient

    from reslab.tracking.pt2_weights import weights_sha256
    from reslab.tracking.registry import PULL_FILE, download

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("pulls", artifact_location=(tmp_path / "artifacts").as_uri())
    nets = [_trained_checkpoint(tmp_path / f"net{seed}.pt", "A", seed=seed) for seed in (1, 2)]
    name = "cifar10-cifar_resnet20-A"
    for seed in (1, 2):
        run = _run(client, experiment, name, 0.5 - seed / 10, tmp_path / f"net{seed}.pt")
        register_best(client, [run], {"study": "s"})
    first = client.get_model_version(name, "1")
    assert first.tags["weights_sha256"] == weights_sha256(nets[0].state_dict())  # recorded at registration

    out = tmp_path / "pulled"
    folder = download(f"{name}/1", out, uri)
    assert json.loads((folder / PULL_FILE).read_text())["weights_sha256"] == first.tags["weights_sha256"]
    images = torch.randn(4, 3, 32, 32)
    assert torch.equal(load(folder)(images), nets[0](images))
    (folder / "kept").write_text("a pull's folder is not emptied by a second pull of it")
    assert download(f"{name}/1", out, uri) == folder and (folder / "kept").is_file()

    reslab = [str(Path(sys.executable).with_name("reslab")), "models", "pull"]
    mine = tmp_path / "mine"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "notes.txt").write_text("my notes")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "thesis.tex").write_text("mine too")
    (tmp_path / "link-out").mkdir()
    (tmp_path / "link-out" / "model").symlink_to(tmp_path / "linked")
    (tmp_path / "file-out").mkdir()
    (tmp_path / "file-out" / "model").write_text("a file")
    cases = {
        out: f"is a pull of {name} version 1, not a pull of {name} version 2",
        mine: "is a folder of other files",
        tmp_path / "link-out": "is a link",
        tmp_path / "file-out": "is a file",
    }
    for where, message in cases.items():
        done = subprocess.run([*reslab, f"{name}/2", "--out", str(where), "--tracking-uri", uri],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (mine / "model" / "notes.txt").read_text() == "my notes"
    assert (tmp_path / "linked" / "thesis.tex").read_text() == "mine too"
    assert (tmp_path / "file-out" / "model").read_text() == "a file"
    assert json.loads((folder / PULL_FILE).read_text())["version"] == "1"  # the first pull, untouched

    for what, change in TAMPERING.items():  # edits that keep the archive a readable zip
        copy = tmp_path / "tampered" / what.replace(" ", "-")
        shutil.copytree(folder, copy)
        (copy / PULL_FILE).unlink()  # the reader's own checks, without the digest
        _rewrite_program(copy / PROGRAM_FILE, change)
        with pytest.raises(CheckpointError, match=r"weight (fc|stem)\.[a-z0-9.]+ (holds|has dtype)"):
            load(copy)
    swapped = tmp_path / "tampered" / "values"  # same sizes, other values: only the digest sees it
    shutil.copytree(folder, swapped)
    _rewrite_program(swapped / PROGRAM_FILE, lambda c, r: _set(r, "fc.bias", bytes(len(r["fc.bias"]))))
    with pytest.raises(CheckpointError, match=f"the weights in {swapped} changed since they were pulled"):
        load(swapped)

    spec_path = swapped / "extra_files" / SPEC_FILE
    spec = json.loads(spec_path.read_text())
    (swapped / PULL_FILE).unlink()
    spec_path.write_text(json.dumps({**spec, "net": {**spec["net"], "model": "cifar_resnet56"}}))
    with pytest.raises(CheckpointError, match=f"the weights in {swapped} do not fit its cifar_resnet56"):
        load(swapped)
    spec_path.write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{spec_path} is damaged"):
        load(swapped)

    # the store's own copy changed after registration: the pull refuses it and leaves no folder
    program = Path(client.get_logged_model(first.source.removeprefix("models:/")).artifact_location.removeprefix(
        "file://")) / PROGRAM_FILE  # fmt: skip
    _rewrite_program(program, lambda c, r: _set(r, "fc.bias", bytes(len(r["fc.bias"]))))
    with pytest.raises(CheckpointError, match=f"the weights of {name} version 1 in the store .* are not the ones"):
        download(f"{name}/1", tmp_path / "fresh", uri)
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == []


KILLED_BETWEEN = """
import os, signal, sys
from mlflow import MlflowClient
from reslab.tracking.registry import register_best

uri, run_id = sys.argv[1], sys.argv[2]
client = MlflowClient(uri, registry_uri=uri)
def killed(*args, **kwargs):  # the driver dies at the worst moment: the version made, its alias not yet
    os.kill(os.getpid(), signal.SIGKILL)
client.set_registered_model_alias = killed
register_best(client, [client.get_run(run_id)], {"study": "s"})
"""


def test_a_kill_between_version_and_alias_is_completed_by_the_next_registration(tmp_path: Path) -> None:
    """A registering process SIGKILLed after MLflow made the version and before `@best` was set: the name has
    a version and no alias (a pull by name fails); the next registration of the same study (a resume or a
    sync) sets `@best` on that version and makes no second one."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    from reslab.tracking.registry import download

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("kill", artifact_location=(tmp_path / "artifacts").as_uri())
    net = _trained_checkpoint(tmp_path / "net.pt", "A", seed=3)
    name = "cifar10-cifar_resnet20-A"
    run = _run(client, experiment, name, 0.25, tmp_path / "net.pt")
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN, uri, run.info.run_id], capture_output=True,
                            timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.get_registered_model(name).aliases == {}
    with pytest.raises(ModelNotFound, match="best"):
        download(name, tmp_path / "before", uri)

    assert register_best(client, [client.get_run(run.info.run_id)], {"study": "s"}) == {name: "1"}
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]  # no second version
    assert client.get_registered_model(name).aliases == {"best": 1}
    images = torch.randn(4, 3, 32, 32)
    assert torch.equal(load(download(name, tmp_path / "after", uri))(images), net(images))
    assert register_best(client, [client.get_run(run.info.run_id)], {"study": "s"}) == {}  # then: nothing to do
