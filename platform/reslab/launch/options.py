"""How a study runs, apart from what it trains: one record from the command line down to each trial."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    """Where a study reads its data, how many trials run at once and what a trial does on a node that lacks
    something. None of it enters a trial's identity: the same study run with other options trains the same
    nets."""

    data_dir: str | None = None  # the dataset's folder ("~" stays: each node's own home)
    data_source: str | None = None  # where a node copies the dataset from when its data_dir lacks it
    data_max_bytes: int | None = None  # the most a data source may unpack to (default: 4x the dataset's size)
    resume: bool = False  # require an experiment to restore (running the same study again restores one anyway)
    max_concurrent_trials: int | None = None  # default: as many as the resources allow
    gpus_per_trial: float | None = None  # default: sized by the net (`resources.gpu_fraction`)
    shared_storage: bool = False  # a local --storage (and sqlite store) is on a folder every node mounts
    allow_cpu_fallback: bool = False  # a trial given a GPU torch cannot use trains on the CPU instead of failing
    store_wait_s: float = 120.0  # at the end, how long to wait for a tracking server that is away (a restart: ~30 s)
    verbose: bool = False  # Ray Tune's own status tables and the trial workers' output too
