"""Every file name reslab writes in an experiment folder (beside Ray Tune's own), defined once."""

from __future__ import annotations

GRID_RECORD = "grid.json"  # the fingerprint of the trial grid: a restore never continues a different one
LAUNCH_RECORD = "launch.json"  # the launch's provenance tags, study definition and tracking store
SUMMARY_TABLE = "summary.csv"  # the paper-shaped table (or a search's), one row per variant
SUMMARY_TEXT = "summary.md"  # the same with Fig. 7's responses and the verdicts, as the study printed them
VERDICTS_FILE = "verdicts.csv"  # one row per claim: verdict, effect, interval, n
RESPONSES_FILE = "layer_responses.csv"  # Fig. 7: each trial's per-layer response std
LEASE_FILE = "driver.json"  # the running driver's lease (`lock.py`)
SEAL_FOLDER = ".reslab-state"  # sealed copies of Tune's state files and their manifest (`seal.py`)
JOURNAL = "optuna.journal"  # a search's Optuna study
TRIAL_RECORDS = ("params.json", "result.json")  # Tune's files in a trial folder that a sync reads
WORKER_GROUP_FILE = "worker_group"  # in a data-parallel trial's Ray Train folder: its placement group's id
