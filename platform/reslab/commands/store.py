"""The subcommands that read or write a tracking store: the registry (`models list`, `models pull`), `tracking
sync`, the dashboard, a study's HTML report and the scorecard."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path


def run_registered(args: argparse.Namespace) -> int:
    """The registry: every model with its versions, aliases and the test error each version was registered with."""
    from mlflow import MlflowClient

    from ..tracking.catalog import registered_versions
    from ..tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    versions = registered_versions(MlflowClient(uri, registry_uri=uri))
    if args.json:
        from ..tracking.layout import pull_command

        for v in versions:
            row = {"name": v.name, "version": int(v.version), "aliases": list(v.aliases), "study": v.study}
            errors = {"test_error": v.test_error, "train_error": v.train_error}
            errors = {k: None if math.isnan(e) else 100 * e for k, e in errors.items()}
            print(json.dumps({**row, **errors, "pull": pull_command(v.name, v.version, uri)}))
        return 0
    if not versions:
        print(f"no registered models in {uri}; a finished study registers the best net of each configuration")
        return 0
    print(f"{'name':<36} {'version':>7}  {'aliases':<10} {'test err':>8}  study")
    for v in versions:
        shown = "       -" if math.isnan(v.test_error) else f"{100 * v.test_error:7.2f}%"
        print(f"{v.name:<36} {v.version:>7}  {','.join(v.aliases) or '-':<10} {shown}  {v.study or '-'}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from ..tracking.registry import download

    folder = download(args.name, args.out, args.tracking_uri)
    print(f"pulled {args.name} into {folder}")
    print(f"load it with: reslab.load_model({str(folder)!r})")
    return 0


def run_tracking_sync(args: argparse.Namespace) -> int:
    """Deliver a study's results to MLflow after the store was away, then register its best nets."""
    from ..store.layout import GRID_RECORD
    from ..store.storage import is_cloud_uri
    from ..tracking import check_reachable, prepare_store, resolve_tracking_uri
    from ..tracking.registry import register_study_models
    from ..tracking.sync import local_copy, sync_experiment

    def check(folder: Path) -> None:
        if not (folder / GRID_RECORD).is_file():
            raise ValueError(
                f"{args.folder} is not a study's experiment folder (no grid.json); e.g. runs/NAME-PROFILE or "
                "s3://BUCKET/PATH/NAME-PROFILE"
            )

    cloud = args.folder if is_cloud_uri(args.folder) else None
    if not cloud:
        check(Path(args.folder))  # before the store is touched
    uri = resolve_tracking_uri(args.tracking_uri)
    check_reachable(uri)
    uri = prepare_store(uri)
    with local_copy(cloud or Path(args.folder).resolve()) as folder, _driver_gone(cloud or folder) as gone:
        check(folder)
        synced = sync_experiment(folder, uri, copy_of=cloud, driver_gone=gone)  # the records were copied once
        print(synced)
        tags = {"experiment": folder.name}
        for name, version in register_study_models(uri, folder.name, synced.trial_ids, tags).items():
            print(f"registered models:/{name}/{version} (alias @best)")
    if synced.problems:
        print(f"{len(synced.problems)} things not delivered (listed above); the rest is in {uri}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _driver_gone(experiment: str | Path) -> Iterator[bool]:
    """Whether no driver runs the experiment, holding its lock meanwhile so that none starts during the sync."""
    from ..store.lock import StudyRunning, driver_lock

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(driver_lock(str(experiment)))
        except StudyRunning:
            yield False
            return
        yield True


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the Streamlit dashboard on the store, bound to 127.0.0.1 unless --host says otherwise.

    This process becomes Streamlit (exec, same pid): a SIGTERM or Ctrl-C to `reslab dashboard` stops the
    server, which a child process would outlive."""
    import os

    from ..dashboard import APP
    from ..tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    check_port_free(args.host, args.port)
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", args.host,
        "--server.port", str(args.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.showErrorDetails", "false",  # error details stay in this console, not in the browser
        "--client.toolbarMode", "minimal",  # no Deploy button: this is a results viewer, not an app to publish
    ]  # fmt: skip
    print(f"dashboard on http://{args.host}:{args.port} for {uri}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execve(sys.executable, command, {**os.environ, "RESLAB_TRACKING_URI": uri})


def check_port_free(host: str, port: int) -> None:
    """ValueError when `port` on `host` is taken (Streamlit would print the URL, then fail)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(
                f"--port {port} on {host} is not available ({error.strerror or error}); pass another --port"
            ) from error


def run_report(args: argparse.Namespace) -> int:
    """Write a study's report: one self-contained HTML file with its tables and figures."""
    from ..dashboard.report import study_report
    from ..tracking.store import existing_store
    from ..writable import check_writable

    out = args.out or Path(f"{args.study}.html")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the HTML file to write, e.g. {out / (args.study + '.html')}")
    check_writable(out, "--out")
    uri = existing_store(args.tracking_uri)
    text = study_report(uri, args.study)  # before opening the file: a bad name or a store that is down writes nothing
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.encode()) / 1e6:.1f} MB, opens offline in any browser)")
    return 0


def run_scorecard(args: argparse.Namespace) -> int:
    """Print every claim the store's studies checked, with its latest verdict."""
    from ..dashboard.scorecard import scorecard, scorecard_markdown
    from ..tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    table = scorecard(uri)
    if args.json:
        for row in table.assign(launched=table["launched"].astype(str)).to_dict("records"):
            print(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}))
        return 0
    if table.empty:
        print(f"no verdicts in {uri} yet: a study records them when it ends (python studies/NAME.py ...)")
        return 0
    print(scorecard_markdown(table), end="")
    return 0
