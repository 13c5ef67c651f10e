"""The names a study's MLflow store is read and written by: one place for the writer, the sync, the registry
and the dashboard. No Ray or torch here, so that reading a store (the dashboard) loads neither.

Layout: one experiment per study and profile (`NAME-PROFILE`); one launch (parent) run per launch of the
study, tagged LAUNCH_TAG, carrying the study's definition as STUDY_ARTIFACT; one child run per trial,
tagged with its Ray trial id (TRIAL_TAG), its variant label and the registered model name, with METRICS
logged by training iteration.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from ..store.layout import RESPONSES_FILE, VERDICTS_FILE

METRICS = (
    "train_error", "test_error", "train_loss", "test_loss", "lr", "images_per_second",
    "validation_error", "validation_loss",  # where a run holds out a validation set (a search selects on it)
    "train_error_top5", "test_error_top5",  # ImageNet runs: the paper's tables give top-1 and top-5
    "test_error_10crop", "test_error_10crop_top5",  # the final report of a run with 10-crop testing
    "test_error_multiscale", "test_error_multiscale_top5",  # ... and with the multi-scale test (Table 4)
)  # fmt: skip
CURVE_METRICS = ("train_error", "test_error")  # what the paper's figures plot

TRIAL_TAG = "ray.trial_id"  # on a trial's run: the Ray Tune trial id, how a restored driver finds the run again
LAUNCH_TAG = "reslab.launch"  # "true" on a launch's parent run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a trial's run under its launch
VARIANT_TAG = "reslab.variant"  # the variant label (e.g. "cifar_resnet56"), as the study's tables name it
REGISTERED_NAME_TAG = "reslab.registered_name"  # the registry name the trial's net goes under
MODEL_TAG = "reslab.model"  # set once the trial's model is logged
MODEL_ID_TAG = "reslab.model_id"  # the MLflow Logged Model that holds the trial's net (models:/<id>)
WEIGHTS_TAG = "reslab.weights_sha256"  # on a trial run: the digest of its logged net's weights (pt2_weights)
VERSION_WEIGHTS_TAG = "weights_sha256"  # on a registered version: the same digest, which a pull checks
MODEL_ERROR_TAG = "reslab.model_error"  # why the trial's model could not be logged
CHECKPOINT_TAG = "reslab.checkpoint"  # where the checkpoint the model came from lives
# MLflow's UI shows an experiment of this kind as model training, not as a GenAI project (traces, agents)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}
RUNTIME_TAG = "reslab.runtime"  # how the trial ran (data folder, device, precision, DDP workers), as JSON
FAILED_TAG = "reslab.failed"  # why a trial could not start (missing data, a GPU torch cannot use, ...)
DIVERGED_TAG = "diverged"  # why a trial's loss diverged
STATUS_TAG = "reslab.status"  # how a trial ended, one of STATUSES (set when its run is closed)
REASON_TAG = "reslab.status_reason"  # why it ended that way (empty when it finished)

VERDICT_TAG = "reslab.verdict."  # + a claim's id, on a launch run: the verdict its study gave the claim
PROFILE_TAG = "profile"  # on a launch run: the profile it ran ("smoke", "quick", "paper")

STUDY_ARTIFACT = "study.json"  # on a launch run: variants in the paper's order, the paper's numbers, trials
VERDICTS_ARTIFACT = VERDICTS_FILE  # on a launch run: each claim's verdict with its effect, interval and n
RESPONSES_ARTIFACT = RESPONSES_FILE  # on a trial's run: Fig. 7's per-layer response std
MODEL_ARTIFACT = "model"  # the name of a trial's Logged Model

# What reslab names things it creates (studies, their experiments and folders, registered nets): one path
# component that needs no quoting in a shell, a URL, an MLflow filter or a file system.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit (no '/', spaces or quotes)"


def name_problem(kind: str, name: str) -> str | None:
    """Why `name` cannot name a `kind` (a "study": its folder and experiment are made from it), or None when it
    can. Registered-model names need no check: `registry.registered_name` builds them from validated parts."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > 200:
        return f"{kind} name {name!r} is not allowed: use {NAME_RULE}, at most 200 characters"
    return None


def filter_literal(value: str) -> str:
    """`value` as a string literal in an MLflow search filter. Names made elsewhere (MLflow accepts any) may
    hold a quote: MLflow reads both '...' and "..." literals, so the quote that is absent is used."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both kinds of quote: MLflow's search filters cannot name it")


def pull_command(name: str, version: int | str, uri: str) -> str:
    """The `reslab models pull` line for one registered version of the store at `uri`, safe to paste into a
    shell anywhere (the store named, not left to the folder it is pasted in)."""
    return f"reslab models pull {shlex.quote(f'{name}/{version}')} --out models/ --tracking-uri {shlex.quote(uri)}"


# How a trial ends, in the words of the study's summary, the console, the sync and the dashboard alike.
STATUSES = ("running", "finished", "diverged", "stopped", "interrupted", "failed")
# The MLflow run status each ends its run with: a diverged trial did run to its end (its curve is the result);
# "stopped" is an early-stopping scheduler's (ASHA's) decision; "interrupted" is a study stopped (Ctrl-C, a
# driver that died) before the trial's end: nothing went wrong with it, and a resume continues it.
RUN_STATUS = {
    "finished": "FINISHED",
    "diverged": "FINISHED",
    "stopped": "KILLED",
    "interrupted": "KILLED",
    "failed": "FAILED",
}


def trial_status(
    last: Mapping[str, Any], planned: int, *, error: str | None = None, early_stopping: bool = False
) -> tuple[str, str]:
    """The one classification of an ended trial, from its last report: (status, reason).

    `error` is why Ray Tune marked it errored (None when it did not); `early_stopping` says a scheduler may end
    trials before their `planned` iterations (a search's ASHA), so ending early is "stopped", not "failed".
    """
    iterations = int(last.get("iteration", 0) or 0)
    if error is not None:
        return "failed", error
    if last.get("failed"):
        return "failed", str(last.get("failed_reason", ""))
    if last.get("diverged"):
        return "diverged", str(last.get("diverged_reason", ""))
    if iterations >= planned:
        return "finished", ""
    if early_stopping:
        return "stopped", f"stopped early by ASHA at iteration {iterations} of {planned}"
    # A trial ends short of its iterations only by a failure or a divergence (both reported above) or by ASHA:
    # a last report short of the end without either means the study stopped under it, which a resume continues.
    return "interrupted", f"interrupted at iteration {iterations} of {planned}"


def run_status(mlflow_status: str, tags: Mapping[str, str]) -> str:
    """A trial's status as its MLflow run records it: "running" while the run is open, else STATUS_TAG (set
    before the run is closed). A closed run without it holds an incomplete record: "failed" until the sync
    closes it again."""
    if mlflow_status in ("RUNNING", "SCHEDULED"):
        return "running"
    return tags[STATUS_TAG] if tags.get(STATUS_TAG) in STATUSES else "failed"


def variant_label(variant: Mapping[str, Any]) -> str:
    """A short human name for a variant: its values joined, e.g. "resnet34-C" or "lr=0.05-weight_decay=0.0001"."""
    parts = []
    for key, value in variant.items():
        if key != "seeds":
            parts.append(str(value) if key in ("model", "shortcut") else f"{key}={value}")
    return "-".join(parts) or "base"
