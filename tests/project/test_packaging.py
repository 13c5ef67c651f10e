"""The project as a user installs it: the built wheel, not the checkout. It carries the dashboard app, and
`reslab dashboard` run from elsewhere serves it; a SIGTERM to `reslab dashboard` stops the server. It carries
the shipped studies, and `reslab study run NAME` runs one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from helpers import free_port
from reslab.tracking import prepare_store

SOURCES = ("pyproject.toml", "README.md", "platform", "dashboard", "studies")  # what a source distribution holds


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a clean copy of the sources (building in the checkout would leave build/ there)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("reslab-*.whl")
    return wheel


def install(wheel: Path, tmp_path: Path) -> Path:
    """A fresh environment holding the wheel (no -e), which reuses this one's installed dependencies."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # this environment's packages, but not its editable reslab (that is a .pth hook, not processed from here)
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    return env


@pytest.mark.slow
def test_the_installed_wheel_serves_the_dashboard_and_sigterm_stops_it(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert "reslab/dashboard/app.py" in zipfile.ZipFile(wheel).namelist()
    env = install(wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import reslab; print(reslab.__file__)"],
        capture_output=True, text=True, check=True, cwd=elsewhere,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(env)), where  # the wheel's reslab, not the checkout's
    store = f"sqlite:///{elsewhere / 'mlflow.db'}"
    prepare_store(store)
    port = free_port()
    dashboard = subprocess.Popen(
        [str(env / "bin" / "reslab"), "dashboard", "--tracking-uri", store, "--port", str(port)],
        cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not answers(f"http://127.0.0.1:{port}/_stcore/health"):
            assert dashboard.poll() is None, dashboard.stdout.read()
            assert time.monotonic() < deadline, "the dashboard did not answer in 120 s"
            time.sleep(0.5)
        dashboard.send_signal(signal.SIGTERM)  # to `reslab dashboard` itself, not its process group
        assert dashboard.wait(timeout=30) is not None
        time.sleep(1)
        assert not answers(f"http://127.0.0.1:{port}/_stcore/health")  # nothing left serving
        with pytest.raises(ProcessLookupError):
            os.killpg(dashboard.pid, 0)  # and nothing of its group left running
    finally:
        if dashboard.poll() is None:
            os.killpg(dashboard.pid, signal.SIGKILL)
            dashboard.wait()


@pytest.mark.slow
def test_the_installed_wheel_lists_and_runs_the_shipped_studies(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.stem for p in (REPO / "studies").glob("*.py") if not p.stem.startswith("_"))
    assert all(f"reslab/studies/{name}.py" in names for name in shipped), names
    env = install(wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    reslab = str(env / "bin" / "reslab")
    listed = subprocess.run([reslab, "study", "list"], capture_output=True, text=True, cwd=elsewhere, env=clean)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == shipped
    store = f"sqlite:///{elsewhere / 'mlflow.db'}"
    done = subprocess.run(
        [reslab, "study", "run", "lr_search", "--profile", "smoke", "--storage", "runs", "--tracking-uri", store],
        capture_output=True, text=True, cwd=elsewhere, env=clean, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (elsewhere / "runs" / "lr_search-smoke" / "summary.md").is_file()
    refused = subprocess.run([reslab, "study", "run", "lr_serch"], capture_output=True, text=True, env=clean)
    assert refused.returncode == 2 and "no study named 'lr_serch'; valid: cifar_depth" in refused.stderr
