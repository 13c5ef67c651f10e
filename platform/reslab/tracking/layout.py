"""The names a study's MLflow store is read and written by: one place for the writer, the sync, the registry
and the dashboard. No Ray or torch here, so that reading a store (the dashboard) loads neither.

Layout: one experiment per study and profile (`NAME-PROFILE`); one launch (parent) run per launch of the
study, tagged LAUNCH_TAG, carrying the study's definition as STUDY_ARTIFACT; one child run per trial,
tagged with its Ray trial id (TRIAL_TAG), its variant label and the registered model name, with METRICS
logged by training iteration.
"""

from __future__ import annotations

METRICS = ("train_error", "test_error", "train_loss", "test_loss", "lr", "images_per_second")
CURVE_METRICS = ("train_error", "test_error")  # what the paper's figures plot

TRIAL_TAG = "ray.trial_id"  # on a trial's run: the Ray Tune trial id, how a restored driver finds the run again
LAUNCH_TAG = "reslab.launch"  # "true" on a launch's parent run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a trial's run under its launch
VARIANT_TAG = "reslab.variant"  # the variant label (e.g. "cifar_resnet56"), as the study's tables name it
REGISTERED_NAME_TAG = "reslab.registered_name"  # the registry name the trial's net goes under
MODEL_TAG = "reslab.model"  # set once the trial's model is logged
MODEL_ERROR_TAG = "reslab.model_error"  # why the trial's model could not be logged
CHECKPOINT_TAG = "reslab.checkpoint"  # where the checkpoint the model came from lives
RUNTIME_TAG = "reslab.runtime"  # how the trial ran (data folder, device, precision, DDP workers), as JSON
FAILED_TAG = "reslab.failed"  # why a trial could not start (missing data, a GPU torch cannot use, ...)

STUDY_ARTIFACT = "study.json"  # on a launch run: variants in the paper's order, the paper's numbers, trials
RESPONSES_ARTIFACT = "layer_responses.csv"  # on a trial's run: Fig. 7's per-layer response std
MODEL_ARTIFACT = "model"  # on a trial's run: the folder a registered version points to
