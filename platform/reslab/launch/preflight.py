"""What is knowable before any trial starts: where the study runs, whether its data folders hold the
right dataset there, and whether the cluster has (or can add) GPUs.

A wrong `--data-dir` must cost seconds and one message, not trials that fail and are retried. On this
machine the folder is checked here; on a cluster it is checked on every node that can host a trial,
by a small Ray task pinned to that node, because that is where the trials will read it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from ..data import DatasetNotFoundError, check_data_dir
from ..study.spec import Trial

NODE_CHECK_TIMEOUT_S = 120  # a node that does not answer the data check in this long is reported


def data_needs(trials: list[Trial]) -> list[tuple[str, str | None]]:
    """The distinct (dataset, data folder) pairs the trials read; a trial allowed to download has none."""
    needs = {(t.config.dataset, t.config.data_dir) for t in trials if not t.config.download}
    return sorted((d, f) for d, f in needs if d != "synthetic")


def check_data_here(trials: list[Trial]) -> None:
    """Raise DatasetNotFoundError for the first folder on this machine that lacks its dataset."""
    if problems := _data_problems(data_needs(trials)):
        raise DatasetNotFoundError(problems[0])


def _data_problems(needs: list[tuple[str, str | None]]) -> list[str]:
    """The problems with each data folder on this machine (empty when all are fine); also run on each node."""
    problems = []
    for dataset, folder in needs:
        try:
            check_data_dir(dataset, folder)
        except DatasetNotFoundError as error:
            problems.append(str(error))
    return problems


def check_data_on_nodes(trials: list[Trial]) -> int:
    """Check the data folders on every live node that can host a trial (one with CPUs or GPUs); raise
    DatasetNotFoundError naming the node and the problem. Returns how many nodes were checked. Nodes
    the autoscaler adds later are checked by their trials, which fail at once (not retried) on missing data."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    needs = data_needs(trials)
    nodes = [n for n in ray.nodes() if n["Alive"] and (n["Resources"].get("CPU") or n["Resources"].get("GPU"))]
    if not needs or not nodes:
        return len(nodes)
    check = ray.remote(num_cpus=0)(_data_problems)
    pending = {
        check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(needs): n
        for n in nodes
    }
    for ref, node in pending.items():
        where = f"on node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        try:
            problems = ray.get(ref, timeout=NODE_CHECK_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as error:
            raise DatasetNotFoundError(f"{where}: the data check did not answer in {NODE_CHECK_TIMEOUT_S} s") from error
        if problems:
            raise DatasetNotFoundError(f"{where}: {problems[0]}")
    return len(nodes)


def cluster_address() -> str | None:
    """The cluster this driver joins: RAY_ADDRESS, else the one `ray start` made on this machine if it still
    answers (how `ray submit` runs a study on the head); None means an embedded Ray on this machine.

    Ray itself would try the address file a `ray start` left behind even when that cluster is gone and
    wait for it; a local study must not hang on a stale file.
    """
    return os.environ.get("RAY_ADDRESS") or _live_local_cluster()


def _live_local_cluster() -> str | None:
    """The address of the cluster `ray start` last started on this machine, if it accepts connections."""
    try:
        from ray._common.utils import get_ray_address_file

        address = Path(get_ray_address_file(None)).read_text().strip()
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2):
            return address
    except (OSError, ValueError, ImportError):
        return None


AUTOSCALING_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` leaves the cluster config on the head


def bootstrap_config(path: str = AUTOSCALING_CONFIG) -> dict:
    """The cluster config `ray up` left on this head ({} on a machine without one, or when unreadable)."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    try:
        return yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def autoscaling_gpus(path: str = AUTOSCALING_CONFIG) -> float:
    """The GPUs the autoscaler may add: the sum over worker node types of GPUs x max_workers, from the
    config `ray up` copies to the head (the file Ray Tune also reads to tell a cluster). 0 without one.

    A cluster whose GPU workers scale from zero has no GPU when the study starts; trials must still ask
    for GPU shares, or they would run on CPUs and never make the autoscaler add a GPU node."""
    config = bootstrap_config(path)
    head = config.get("head_node_type")
    return float(
        sum(
            (node.get("resources") or {}).get("GPU", 0) * node.get("max_workers", 0)
            for name, node in (config.get("available_node_types") or {}).items()
            if name != head
        )
    )


def autoscaling_workers(path: str = AUTOSCALING_CONFIG) -> int:
    """How many worker nodes the cluster config allows (cloud: max_workers; on-prem: the listed machines)."""
    config = bootstrap_config(path)
    listed = len((config.get("provider") or {}).get("worker_ips") or [])
    return max(int(config.get("max_workers") or 0), listed)


def is_local_path(uri: str) -> bool:
    """A path on this node's own disk (a folder, file:// or an sqlite file), not a server or a bucket."""
    return "://" not in uri or uri.startswith(("file://", "sqlite:"))


def check_storage_is_shared(tracking_uri: str, storage_uri: str, shared: bool) -> None:
    """On a cluster of several nodes (or one the autoscaler may grow), refuse stores on the driver's own
    disk: Ray Tune restores a trial moved to another node from --storage, and `ray down` deletes the
    head's disk with the MLflow database on it. `shared` (--shared-storage) says the paths are on a
    filesystem every node mounts and that outlives the cluster (NFS)."""
    import ray

    if shared:
        return
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    workers = autoscaling_workers()
    if nodes < 2 and workers == 0:
        return
    local = [f"--storage {storage_uri}"] if is_local_path(storage_uri) else []
    local += [f"the MLflow store {tracking_uri}"] if is_local_path(tracking_uri) else []
    if not local:
        return
    size = f"{nodes} nodes" if nodes > 1 else f"1 node and up to {workers} workers the autoscaler can add"
    raise ValueError(
        f"the cluster has {size}, but {' and '.join(local)} {'is' if len(local) == 1 else 'are'} on this node's "
        "own disk: a trial moved to another node could not restore its checkpoints, and `ray down` deletes "
        "this disk. Pass --storage s3://BUCKET/PATH and --tracking-uri http://127.0.0.1:5000 (the MLflow server "
        "cluster/node.sh starts on the head), or --shared-storage if the paths are on NFS that every node mounts"
    )


def describe_cluster(address: str | None) -> tuple[str, float]:
    """One line on where the trials run ("a local Ray on this machine: 2 CPUs" or "the cluster at ADDR:
    3 nodes, 4 CPUs, 2 GPUs (+8 GPUs the autoscaler can add)"), and the GPUs the trials may use."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if address is None:
        return f"a local Ray on this machine: {cpus:g} CPUs, {gpus:g} GPUs", gpus
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    scalable = autoscaling_gpus()
    more = f" (+{scalable:g} GPUs the autoscaler can add)" if scalable else ""
    line = f"the cluster at {address}: {nodes} node{'s' * (nodes != 1)}, {cpus:g} CPUs, {gpus:g} GPUs{more}"
    return line, max(gpus, scalable)


def ray_init(address: str | None, verbose: bool) -> None:
    """Join `address`, or start an embedded Ray here; worker output reaches the console only when verbose.
    Ray's core worker takes SIGTERM over (its C++ handler aborts with a stack dump, leaving the trials RUNNING):
    it is given back to Python, as the first Ctrl-C (`stop_on_sigterm`)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=verbose, configure_logging=False)
        stop_on_sigterm()


def stop_on_sigterm() -> None:
    """Make SIGTERM (what `timeout`, systemd, Slurm and Kubernetes send) act as Ctrl-C: Tune's handler, while a
    study runs, saves the experiment and ends the trials as interrupted. Only the main thread may set a
    handler; elsewhere (a notebook's worker thread) Ray's stays."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_interrupt)


def ray_shutdown() -> None:
    """End this process's Ray (an embedded one stops) with Ctrl-C ignored meanwhile: left to Python's exit, a
    Ctrl-C pressed twice to stop a study at once lands in Ray's shutdown and prints a traceback."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    if threading.current_thread() is not threading.main_thread():
        ray.shutdown()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ray.shutdown()
    finally:
        signal.signal(signal.SIGINT, previous)


def _as_interrupt(signum: int, frame: Any) -> None:
    SIGTERM_RECEIVED.set()
    os.kill(os.getpid(), signal.SIGINT)  # whichever SIGINT handler is in force runs: Tune's, or KeyboardInterrupt


SIGTERM_RECEIVED = threading.Event()  # the study command line exits 143 then, as a process SIGTERM ended
