"""Trained nets in MLflow: logged per trial, the best per configuration registered, loaded back safely.

Each finished trial logs its final net as an MLflow model (`mlflow.pytorch`, with a signature and an
input example, so MLflow's own tools can serve it; MLflow 3 stores it as a `torch.export` program).
Beside MLflow's files the model folder holds `reslab_model.json` (what to build) and
`reslab_weights.pt` (the state dict). reslab loads only those two: the weights with
`torch.load(weights_only=True)`, which refuses pickled code, so a model pulled from a shared
registry cannot run code on the researcher's machine.

At the end of a study the best finished trial of each configuration (lowest final test error) is
registered as `<dataset>-<model>-<shortcut>` (`<dataset>-<model>` for plain nets) and the alias
`best` moves to that version.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import create_model, get_model_info
from ..training.checkpoint import CheckpointError, load_checkpoint
from .layout import MODEL_ARTIFACT, MODEL_TAG, REGISTERED_NAME_TAG, TRIAL_TAG, filter_literal, run_status

SPEC_FILE = "reslab_model.json"
WEIGHTS_FILE = "reslab_weights.pt"
EXTRA_FILES = "extra_files"
BEST_ALIAS = "best"
# One MLflow model save at a time in a process: torch.export is not thread-safe, and a study warms it in a thread
_SAVING = threading.Lock()
MODEL_URI = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")


class ModelNotFound(LookupError):
    """The registry has no model (or no such version / alias) under the name asked for."""


@dataclass(frozen=True)
class ModelSpec:
    """What to build before loading weights: a registered architecture and its arguments."""

    model: str
    shortcut: str | None
    depth: int | None
    num_classes: int
    input_shape: tuple[int, int, int]
    normalization: str  # how inputs were normalized in training (see reslab.data.stream.Normalizer)

    def build(self) -> nn.Module:
        extra = {"depth": self.depth} if self.depth is not None else {}
        return create_model(self.model, shortcut=self.shortcut, num_classes=self.num_classes, **extra)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "input_shape": list(self.input_shape)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        values = json.loads(text)
        return cls(**{**values, "input_shape": tuple(values["input_shape"])})


def registered_name(config: dict[str, Any]) -> str:
    """`<dataset>-<model>-<shortcut>` for a trial config, the shortcut resolved to the family default."""
    info = get_model_info(config["model"])
    base = f"{config['dataset']}-{config['model']}"
    return base if info.plain else f"{base}-{info.shortcut_for(config.get('shortcut'))}"


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, ModelSpec]:
    """The eval-mode net saved in a trial checkpoint (a reslab checkpoint carrying its config)."""
    state = load_checkpoint(path)
    config = state.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} carries no trial config; cannot tell which net it holds")
    weights = state["model"]
    info = get_model_info(config["model"])
    spec = ModelSpec(
        model=config["model"],
        shortcut=info.shortcut_for(config.get("shortcut")),  # configs written before it was resolved hold None
        depth=config.get("depth"),
        num_classes=int(weights["fc.weight"].shape[0]),
        input_shape=tuple(info.input_size),
        normalization=config.get("normalization", "pixel_mean"),
    )
    model = spec.build()
    model.load_state_dict(weights)
    return model.eval(), spec


def save_model_folder(model: nn.Module, spec: ModelSpec, folder: Path) -> Path:
    """Write `model` as an MLflow pytorch model in `folder` plus reslab's safe spec + weights files."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    # two images: with one, torch.export (MLflow's default format) would fix the batch size to 1
    example = torch.zeros((2, *spec.input_shape))
    with torch.no_grad():
        output = model(example)
    extra = folder.parent / f"{folder.name}-extra"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / SPEC_FILE).write_text(spec.to_json())
    torch.save(model.state_dict(), extra / WEIGHTS_FILE)
    with _SAVING:
        mlflow.pytorch.save_model(
            model,
            str(folder),
            signature=infer_signature(example.numpy(), output.numpy()),
            input_example=example.numpy(),
            extra_files=[str(extra / SPEC_FILE), str(extra / WEIGHTS_FILE)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    return folder


def warm_model_saving() -> None:
    """Save a tiny net the way a trial's is saved, and throw it away. The first save in a process costs about
    3 s more than the next ones (torch.export imports torch._dynamo; MLflow maps every installed package to
    its modules to check the model's requirements); a study pays it in a thread while its trials train, not
    when its first trial ends."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    spec = ModelSpec("warm-up", None, None, 2, (1, 2, 2), "none")
    with tempfile.TemporaryDirectory() as tmp:
        save_model_folder(net, spec, Path(tmp) / MODEL_ARTIFACT)


def log_trial_model(client: Any, run_id: str, checkpoint_path: str | Path) -> ModelSpec:
    """Log the net in a trial's final checkpoint into its run as the artifact folder `model`."""
    model, spec = model_from_checkpoint(checkpoint_path)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model_folder(model, spec, Path(tmp) / MODEL_ARTIFACT)
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    client.set_tag(run_id, MODEL_TAG, spec.model)
    return spec


def register_best(client: Any, runs: Iterable[Any], tags: dict[str, str]) -> dict[str, str]:
    """Register the lowest-test-error run of each name and move `best` to the new version. Only runs that
    finished their planned iterations with a logged model compete (not one ASHA stopped early, not a
    diverged one). A run already registered under its name is not registered again and `best` stays where
    it is, so registering the same study twice (a re-run sync) changes nothing. Returns the new versions,
    {name: version}."""
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
        if not client.search_registered_models(f"name = {filter_literal(name)}"):
            client.create_registered_model(name, description=f"reslab: best {name} trained by a study")
        elif any(v.run_id == run.info.run_id for v in client.search_model_versions(f"name = {filter_literal(name)}")):
            continue  # registered by an earlier call: nothing new
        metrics = {k: str(v) for k, v in run.data.metrics.items() if k in ("train_error", "test_error")}
        version = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
            run_id=run.info.run_id,
            tags={**tags, **metrics, "run_name": run.info.run_name, "experiment_id": run.info.experiment_id},
        )
        client.set_registered_model_alias(name, BEST_ALIAS, version.version)
        versions[name] = str(version.version)
    return versions


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
        known = sorted(m.name for m in client.search_registered_models())
        raise ModelNotFound(
            f"no registered model {uri!r} ({error.message.splitlines()[0]}); registered: {', '.join(known) or 'none'}"
        ) from error


def download(uri: str, out: str | Path, tracking_uri: str | None = None) -> Path:
    """Copy the model folder of a registered version into `out`; returns that folder."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from ..writable import check_writable
    from .store import existing_store

    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out} is a file; name a folder to download the model into (made if missing)")
    check_writable(out, "--out")
    tracking_uri = existing_store(tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    source = logged_source(client, resolve_version(client, uri))
    Path(out).mkdir(parents=True, exist_ok=True)
    return Path(download_artifacts(artifact_uri=source, dst_path=str(out), tracking_uri=tracking_uri))


def logged_source(client: Any, version: Any) -> str:
    """Where a version's files are: the model its run logged into the store's artifacts. A version whose
    source points anywhere else (MLflow accepts any URI: another folder of this machine, another bucket) is
    refused, so pulling a name never copies files from outside the registry's own store."""
    name = f"{version.name} version {version.version}"
    if not version.run_id:
        raise ModelNotFound(f"{name} was not made from a run's logged model (no run id): refusing to copy from it")
    logged = f"{client.get_run(version.run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    if version.source not in (logged, f"runs:/{version.run_id}/{MODEL_ARTIFACT}"):
        raise ModelNotFound(
            f"{name} points at {version.source}, not at the model its run logged ({logged}): refusing to copy "
            "from there; register the run's model again (reslab tracking sync) or pull another version"
        )
    return logged


def load_folder(folder: str | Path) -> nn.Module:
    """The eval-mode net in a downloaded model folder, from reslab's spec and weights-only state dict."""
    folder = Path(folder)
    if (folder / EXTRA_FILES).is_dir():  # where mlflow.pytorch keeps extra files inside a model folder
        folder = folder / EXTRA_FILES
    spec_path, weights_path = folder / SPEC_FILE, folder / WEIGHTS_FILE
    if not spec_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"{folder} is not a reslab model folder (needs {SPEC_FILE} and {WEIGHTS_FILE})")
    spec = ModelSpec.from_json(spec_path.read_text())
    try:
        weights = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{weights_path} is unreadable ({type(error).__name__}: {error})") from error
    model = spec.build()
    model.load_state_dict(weights)
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
