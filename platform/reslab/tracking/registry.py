"""Trained nets in MLflow: logged per trial, the best per configuration registered, loaded back safely.

Each finished trial logs its final net with `mlflow.pytorch.log_model` as an MLflow 3 Logged Model linked
to its run (signature and input example included, so MLflow's own tools list, serve and load it; MLflow
stores it as a `torch.export` program). Beside MLflow's files the model holds `reslab_model.json` (what to
build). The weights are stored once, in the program: reslab reads them from it as raw tensors
(`pt2_weights`), never unpickling, and builds the net from its spec, so a model pulled from a shared
registry cannot run code on the researcher's machine.

At the end of a study the best finished trial of each configuration (lowest final test error) is
registered as `<dataset>-<model>-<shortcut>` (`<dataset>-<model>` for plain nets) from its Logged Model
(`models:/<model_id>`), and the alias `best` moves to that version. A version carries the SHA-256 of its
weights; a pull checks it and records it beside the files (`reslab_pull.json`), and loading a pulled folder
checks it again. A pull never deletes: it writes a new folder, or finds the same version pulled there before.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import ModelSpec, get_model_info
from ..training.checkpoint import CheckpointError, load_checkpoint
from .layout import (
    MODEL_ARTIFACT,
    MODEL_ID_TAG,
    MODEL_TAG,
    REGISTERED_NAME_TAG,
    TRIAL_TAG,
    VERSION_WEIGHTS_TAG,
    WEIGHTS_TAG,
    filter_literal,
    run_status,
)
from .pt2_weights import pt2_state_dict, weights_sha256

SPEC_FILE = "reslab_model.json"
PROGRAM_FILE = "data/model.pt2"  # where mlflow.pytorch keeps the torch.export program inside a model folder
EXTRA_FILES = "extra_files"
PULL_FILE = "reslab_pull.json"  # written by a pull beside the model's files: which version, and its weights' digest
BEST_ALIAS = "best"
# One MLflow model save at a time in a process: torch.export is not thread-safe, and a study warms it in a thread
_SAVING = threading.Lock()
MODEL_URI = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")


class ModelNotFound(LookupError):
    """The registry has no model (or no such version / alias) under the name asked for."""


@dataclass(frozen=True)
class SavedNet:
    """What a model folder says of its net (`reslab_model.json`): the net to build before loading the weights,
    and what it takes as input."""

    net: ModelSpec
    num_classes: int
    input_shape: tuple[int, int, int]
    normalization: str  # how inputs were normalized in training (see reslab.data.stream.Normalizer)

    def build(self) -> nn.Module:
        return self.net.build(num_classes=self.num_classes)

    def to_json(self) -> str:
        values = {**self.__dict__, "net": self.net.to_dict(), "input_shape": list(self.input_shape)}
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> SavedNet:
        values = json.loads(text)
        return cls(**{**values, "net": ModelSpec(**values["net"]), "input_shape": tuple(values["input_shape"])})


def registered_name(config: dict[str, Any]) -> str:
    """`<dataset>-<net>-<shortcut>` for a trial config (`<dataset>-<net>` for a plain net), the net named with
    its depth (`ModelSpec.label`), so that every distinct net has a name, and an `@best`, of its own."""
    net = ModelSpec.of(config)
    base = f"{config['dataset']}-{net.label}"
    return base if net.shortcut is None else f"{base}-{net.shortcut}"


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, SavedNet]:
    """The eval-mode net saved in a trial checkpoint (a reslab checkpoint carrying its config)."""
    state = load_checkpoint(path)
    config = state.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} carries no trial config; cannot tell which net it holds")
    weights = state["model"]
    info = get_model_info(config["model"])
    spec = SavedNet(
        net=ModelSpec.of(config),
        num_classes=int(weights["fc.weight"].shape[0]),
        input_shape=tuple(info.input_size),
        normalization=config.get("normalization", "pixel_mean"),
    )
    model = spec.build()
    model.load_state_dict(weights)
    return model.eval(), spec


def _model_arguments(model: nn.Module, spec: SavedNet, workdir: Path) -> dict[str, Any]:
    """What `mlflow.pytorch.save_model` / `log_model` take for a reslab net: signature, input example,
    reslab's spec as an extra file, the torch requirement, MLflow's safe (pt2) format."""
    from mlflow.models import infer_signature

    # two images: with one, torch.export would fix the batch size to 1
    example = torch.zeros((2, *spec.input_shape))
    with torch.no_grad():
        output = model(example)
    (workdir / SPEC_FILE).write_text(spec.to_json())
    return {
        "signature": infer_signature(example.numpy(), output.numpy()),
        "input_example": example.numpy(),
        "extra_files": [str(workdir / SPEC_FILE)],
        "pip_requirements": [f"torch=={torch.__version__.split('+')[0]}"],
        "serialization_format": "pt2",
    }


def warm_model_saving() -> None:
    """Save a tiny net the way a trial's is saved, and throw it away. The first save in a process costs about
    3 s more than the next ones (torch.export imports torch._dynamo; MLflow maps every installed package to
    its modules to check the model's requirements); a study pays it in a thread while its trials train, not
    when its first trial ends."""
    import mlflow.pytorch

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    spec = SavedNet(ModelSpec("warm-up"), 2, (1, 2, 2), "none")
    with tempfile.TemporaryDirectory() as tmp, _SAVING:
        mlflow.pytorch.save_model(net, str(Path(tmp) / MODEL_ARTIFACT), **_model_arguments(net, spec, Path(tmp)))


def log_trial_model(client: Any, run_id: str, checkpoint_path: str | Path) -> SavedNet:
    """Log the net in a trial's final checkpoint as a Logged Model of its run (named as the net it registers
    under and its run, e.g. `cifar10-cifar_resnet20-A-cifar_resnet20-A-seed0`; the run's params; tag
    `reslab.model_id` on the run)."""
    import mlflow.pytorch

    model, spec = model_from_checkpoint(checkpoint_path)
    run = client.get_run(run_id)
    net = run.data.tags.get(REGISTERED_NAME_TAG)
    logged = client.create_logged_model(
        run.info.experiment_id,  # MLflow would file it under the default experiment when no run is active
        name=re.sub(r"[/:.%\"']", "_", f"{net}-{run.info.run_name}" if net and run.info.run_name else net or "model"),
        source_run_id=run_id,
        params=dict(run.data.params),
        tags={MODEL_TAG: spec.net.model},
    )
    with tempfile.TemporaryDirectory() as tmp, _SAVING, _store_of(client):
        mlflow.pytorch.log_model(
            model,
            name=MODEL_ARTIFACT,
            model_id=logged.model_id,
            run_id=run_id,
            validate_serving_input=False,  # it would load the program back and run it: +0.7 s a model
            **_model_arguments(model, spec, Path(tmp)),
        )
    client.set_tag(run_id, WEIGHTS_TAG, weights_sha256(model.state_dict()))
    client.set_tag(run_id, MODEL_ID_TAG, logged.model_id)
    client.set_tag(run_id, MODEL_TAG, spec.net.model)
    return spec


def _store_of(client: Any) -> AbstractContextManager[None]:
    """MLflow's fluent calls (log_model, and a version made from a Logged Model) use the global tracking URI:
    point it at the client's store for the call, and back after."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    return _use_tracking_uri(client.tracking_uri)


def model_source(run: Any) -> str:
    """What a run's registered version points to: its Logged Model."""
    return f"models:/{run.data.tags[MODEL_ID_TAG]}"


def register_best(client: Any, runs: Iterable[Any], tags: dict[str, str]) -> dict[str, str]:
    """Register the lowest-test-error run of each name and move `best` to the new version. Only runs that
    finished their planned iterations with a logged model compete (not one ASHA stopped early, not a
    diverged one). One idempotent step per name, which a resume or a sync completes: a run already registered
    under its name is not registered again (a second version a lost answer made is deleted), and `best` is set
    when this call made the version or the name has no `best` yet (a driver killed between the two); otherwise
    it stays where it is, so registering the same study twice changes nothing. Returns {name: version} for
    the versions this call made or gave `best`."""
    best: dict[str, Any] = {}
    for run in runs:
        error = run.data.metrics.get("test_error", math.nan)
        finished = run_status(run.info.status, run.data.tags) == "finished"
        if not finished or MODEL_TAG not in run.data.tags or not math.isfinite(error):
            continue
        name = run.data.tags[REGISTERED_NAME_TAG]
        if name not in best or error < best[name].data.metrics["test_error"]:
            best[name] = run
    versions = {}
    for name, run in sorted(best.items()):
        _ensure_registered_model(client, name)
        version, created = _version_of(client, name, run), False
        if version is None:
            metrics = {k: str(v) for k, v in run.data.metrics.items() if k in ("train_error", "test_error")}
            if digest := run.data.tags.get(WEIGHTS_TAG):
                metrics[VERSION_WEIGHTS_TAG] = digest
            with _store_of(client):  # MLflow looks the Logged Model up in the global store
                client.create_model_version(
                    name,
                    source=model_source(run),
                    run_id=run.info.run_id,
                    model_id=run.data.tags[MODEL_ID_TAG],
                    tags={**tags, **metrics, "run_name": run.info.run_name, "experiment_id": run.info.experiment_id},
                )
            version, created = _version_of(client, name, run), True
        if created or BEST_ALIAS not in client.get_registered_model(name).aliases:
            client.set_registered_model_alias(name, BEST_ALIAS, version.version)
            versions[name] = str(version.version)
    return versions


def _ensure_registered_model(client: Any, name: str) -> None:
    """The registered model `name`, made unless it exists (also when an earlier answer saying so was lost)."""
    from mlflow.exceptions import MlflowException

    if client.search_registered_models(f"name = {filter_literal(name)}"):
        return
    try:
        client.create_registered_model(name, description=f"reslab: best {name} trained by a study")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _version_of(client: Any, name: str, run: Any) -> Any | None:
    """The version of `name` registered from `run`, if any: the first, when a retried request made more (the
    others are deleted, so the name holds one version per run)."""
    found = sorted(
        (v for v in client.search_model_versions(f"name = {filter_literal(name)}") if v.run_id == run.info.run_id),
        key=lambda v: int(v.version),
    )
    from mlflow.exceptions import MlflowException

    for extra in found[1:]:
        try:
            client.delete_model_version(name, extra.version)
        except MlflowException as error:  # deleted by a first request whose answer was lost, then retried
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    return found[0] if found else None


def resolve_version(client: Any, uri: str) -> Any:
    """The ModelVersion that `models:/NAME`, `models:/NAME@alias` or `models:/NAME/3` names (bare NAME
    means @best)."""
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.match(uri if uri.startswith("models:/") else f"models:/{uri}")
    if not match:
        raise ValueError(f"not a model URI: {uri!r}; use models:/NAME, models:/NAME@ALIAS or models:/NAME/VERSION")
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        if version:
            return client.get_model_version(name, version)
        return client.get_model_version_by_alias(name, alias or BEST_ALIAS)
    except MlflowException as error:
        known = {m.name: m for m in client.search_registered_models()}
        if name in known:  # the model is there; the alias or version is what is missing
            versions = sorted(int(v.version) for v in client.search_model_versions(f"name = {filter_literal(name)}"))
            aliases = sorted(getattr(known[name], "aliases", {}) or {})
            what = f"version {version}" if version else f"alias @{alias or BEST_ALIAS}"
            raise ModelNotFound(
                f"{name} has no {what}; its aliases: {', '.join('@' + a for a in aliases) or 'none'}, its versions: "
                f"{', '.join(map(str, versions)) or 'none'}"
            ) from error
        raise ModelNotFound(
            f"no registered model {name!r} ({error.message.splitlines()[0]}); registered: "
            f"{', '.join(sorted(known)) or 'none'}"
        ) from error


def download(uri: str, out: str | Path, tracking_uri: str | None = None) -> Path:
    """Copy the model folder of a registered version to `out/model` and return that folder. The weights are
    checked against the version's digest before the folder is put in place. An `out/model` already there is
    never replaced: a pull of the same version is checked and kept; anything else (your files, a link, another
    version) is refused, naming it."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from ..writable import check_writable
    from .store import existing_store

    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out} is a file; name a folder to download the model into (made if missing)")
    check_writable(out, "--out")
    tracking_uri = existing_store(tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    version = resolve_version(client, uri)
    pulled = {
        "model": version.name,
        "version": str(version.version),
        "weights_sha256": version.tags.get(VERSION_WEIGHTS_TAG),
    }
    target = Path(out) / MODEL_ARTIFACT
    if target.is_symlink() or target.exists():
        return _previous_pull(target, pulled)
    source = logged_source(client, version)
    Path(out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".pulling-") as tmp:
        # a folder URI lands in dst/<its last name>: `model` for older runs, `artifacts` for a Logged Model
        fetched = Path(download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri))
        digest = weights_sha256(_read_folder(fetched)[1])
        if pulled["weights_sha256"] not in (None, digest):
            raise CheckpointError(
                f"the weights of {version.name} version {version.version} in the store ({source}) are not the ones "
                f"registered: SHA-256 {digest}, registered {pulled['weights_sha256']}; the files were changed"
            )
        (fetched / PULL_FILE).write_text(json.dumps({**pulled, "weights_sha256": digest}, indent=2))
        os.rename(fetched, target)  # fails, replacing nothing, if a folder appeared there meanwhile
    return target


def _previous_pull(target: Path, wanted: dict[str, str | None]) -> Path:
    """`target` when it is an intact pull of the version asked for; else a ValueError saying what is there."""
    record = target / PULL_FILE
    what = "a link" if target.is_symlink() else "a file" if not target.is_dir() else "a folder of other files"
    if not target.is_symlink() and record.is_file():
        try:
            earlier = json.loads(record.read_text())
            what = f"a pull of {earlier['model']} version {earlier['version']}"
        except (ValueError, KeyError, TypeError):
            what = f"a folder whose {PULL_FILE} is damaged"
        else:
            if (earlier["model"], str(earlier["version"])) == (wanted["model"], wanted["version"]):
                load_folder(target)  # a CheckpointError if its files were changed since
                return target
    raise ValueError(
        f"{target} is there already and is {what}, not a pull of {wanted['model']} version {wanted['version']}; "
        "reslab never replaces it: pass another --out, or move it away"
    )


def logged_source(client: Any, version: Any) -> str:
    """Where a version's files are: the Logged Model its run logged, in the store's artifacts. A version whose
    source points anywhere else (MLflow accepts any URI: another folder of this machine, another bucket, another
    run's model) is refused, so pulling a name never copies files from outside the registry's own store."""
    name = f"{version.name} version {version.version}"
    if not version.run_id:
        raise ModelNotFound(f"{name} was not made from a run's logged model (no run id): refusing to copy from it")
    run = client.get_run(version.run_id)
    logged = model_source(run) if MODEL_ID_TAG in run.data.tags else "no logged model"
    if version.source != logged:
        raise ModelNotFound(
            f"{name} points at {version.source}, not at the model its run logged ({logged}): refusing to copy "
            "from there; register the run's model again (reslab tracking sync) or pull another version"
        )
    return client.get_logged_model(version.source.removeprefix("models:/")).artifact_location


def _read_folder(folder: Path) -> tuple[SavedNet, dict[str, torch.Tensor]]:
    """The spec and the weights in a model folder, read without unpickling; any damage a CheckpointError."""
    extra = folder / EXTRA_FILES if (folder / EXTRA_FILES).is_dir() else folder  # where mlflow.pytorch puts them
    spec_path, program = extra / SPEC_FILE, folder / PROGRAM_FILE
    if not spec_path.is_file() or not program.is_file():
        raise CheckpointError(f"{folder} is not a reslab model folder (needs {SPEC_FILE} and {PROGRAM_FILE})")
    try:
        spec = SavedNet.from_json(spec_path.read_text())
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{spec_path} is damaged ({type(error).__name__}: {error})") from error
    return spec, pt2_state_dict(program)


def load_folder(folder: str | Path) -> nn.Module:
    """The eval-mode net in a downloaded model folder: built from reslab's spec, its weights read from the
    torch.export program as raw tensors and, in a pulled
    folder, checked against the digest the pull recorded. Weights that do not fit the spec's net, or a spec
    naming no net reslab builds, are a CheckpointError naming the folder."""
    folder = Path(folder)
    spec, weights = _read_folder(folder)
    if (folder / PULL_FILE).is_file():
        try:
            recorded = json.loads((folder / PULL_FILE).read_text()).get("weights_sha256")
        except (ValueError, AttributeError) as error:
            raise CheckpointError(f"{folder / PULL_FILE} is damaged ({error})") from error
        if recorded != weights_sha256(weights):
            raise CheckpointError(f"the weights in {folder} changed since they were pulled (SHA-256 differs)")
    try:
        model = spec.build()
        model.load_state_dict(weights)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"the weights in {folder} do not fit its {spec.net.label} ({first})") from error
    return model.eval()


def load_model(uri: str | os.PathLike, tracking_uri: str | None = None) -> nn.Module:
    """A trained net, eval mode, on the CPU: `load_model("models:/cifar10-cifar_resnet110-A@best")` from the
    MLflow registry (or `/3` for a version), or a model folder pulled with `reslab models pull`. Weights
    are read without unpickling code."""
    uri = os.fspath(uri)
    if not uri.startswith("models:/"):
        return load_folder(uri)
    with tempfile.TemporaryDirectory() as tmp:
        return load_folder(download(uri, tmp, tracking_uri))


def register_study_models(uri: str, experiment: str, trial_ids: Iterable[str], tags: dict[str, str]) -> dict[str, str]:
    """Register the best run of each configuration among this study's trials (found by Ray trial id)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    wanted = set(trial_ids)
    runs = [
        run
        for run in client.search_runs([found.experiment_id], f"tags.`{MODEL_TAG}` != ''", max_results=50_000)
        if run.data.tags.get(TRIAL_TAG) in wanted
    ]
    return register_best(client, runs, tags)
