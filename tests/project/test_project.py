"""Project wiring: CI runs exactly the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"\*\*Test\*\*.*?```bash\n(.+?)\n```", readme, flags=re.S)
    assert match, "README.md has a **Test** section with one bash command"
    assert match.group(1).strip() in (REPO / ".ci" / "run").read_text()


def lowest_declared_python() -> str:
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(3\.\d+)", declared.split("#")[0].strip())
    assert match, f"requires-python is a plain lower bound: {declared}"
    return match.group(1)


def pip_resolve(python: str, *requirements: str) -> list[str]:
    """pip's dry run of installing these exact pins (wheels only, no dependencies) for another Python."""
    where = ["--target", "/nonexistent", "--python-version", python, "--only-binary=:all:"]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "-q",
        "--no-deps",
        *where,
        *requirements,
    ]


@pytest.mark.slow
def test_the_pinned_set_installs_on_the_lowest_declared_python_and_the_cluster_images_python() -> None:
    """constraints.txt has a wheel of every pin for the lowest Python pyproject.toml declares, and for 3.12
    (Ubuntu 24.04's, the AMI of cluster/gpu.yaml): a declared range the pins cannot meet fails here."""
    pythons = sorted({lowest_declared_python(), "3.12"})
    constraints = str(REPO / "constraints.txt")
    resolves = {
        python: subprocess.Popen(
            pip_resolve(python, "-r", constraints), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for python in pythons
    }
    for python, resolve in resolves.items():
        output = resolve.communicate(timeout=600)[0]
        errors = "\n".join(line for line in output.splitlines() if line.startswith("ERROR"))
        assert resolve.returncode == 0, f"the pinned set does not install on Python {python}:\n{errors}"


def test_a_python_below_the_declared_range_is_caught_by_the_pins() -> None:
    """The check above can fail: Python 3.10 (below the range) finds no wheel of the pinned numpy 2.4."""
    numpy = next(line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("numpy=="))
    done = subprocess.run(pip_resolve("3.10", numpy), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and f"No matching distribution found for {numpy}" in done.stdout + done.stderr


# each may import only those before it; `store` (the experiment folder) sits below `tracking` because the sync
# replays that folder into MLflow
LAYERS = ("models", "data", "training", "store", "tracking", "results", "study", "launch", "dashboard")


def imports_of(path) -> list[str]:
    """Every reslab module a source file imports, at the top or inside a function."""
    import ast

    relative = path.relative_to(REPO / "platform").with_suffix("")
    package = ".".join(relative.parts[:-1])  # the package a relative import starts from (also for __init__)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join([*base, *([node.module] if node.module else [])]))
            else:
                found.append(node.module or "")
    return [name for name in found if name == "reslab" or name.startswith("reslab.")]


def test_layers_import_only_the_layers_below_them() -> None:
    """models < data < training < store < tracking < results < study < launch < dashboard, function-local
    imports included."""
    wrong = []
    for path in sorted((REPO / "platform" / "reslab").rglob("*.py")):
        parts = path.relative_to(REPO / "platform" / "reslab").parts
        if parts[0] not in LAYERS:
            continue
        for name in imports_of(path):
            target = name.split(".")[1] if name.count(".") else ""
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(parts[0]):
                wrong.append(f"{'/'.join(parts)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_dashboard_reads_tracking_and_results_only() -> None:
    """The dashboard shows what a store holds: it never reaches into a study's launch, storage or nets."""
    wrong = []
    for path in sorted((REPO / "platform" / "reslab" / "dashboard").rglob("*.py")):
        for name in imports_of(path):
            package = name.split(".")[1] if name.count(".") else ""
            if package in LAYERS and package not in ("tracking", "results", "dashboard"):
                wrong.append(f"{path.name} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_a_study_file_imports_without_ray() -> None:
    """A study file imports (and validates) on a machine with no Ray: only `main` running a study needs it."""
    probe = (
        "import runpy, sys; runpy.run_path('studies/cifar_depth.py', run_name='probe'); "
        "import reslab.launch, reslab.study; print(sorted({'ray'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def test_reading_a_store_loads_neither_ray_nor_torch() -> None:
    probe = "import sys, reslab.dashboard; print(sorted({'ray', 'torch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_readmes_new_study_runs_its_dry_run(tmp_path) -> None:
    """The one-file study the README shows is a working study: it validates and plans."""
    readme = (REPO / "README.md").read_text()
    (snippet,) = [block for block in re.findall(r"```python\n(.+?)```", readme, flags=re.S) if "main(STUDY)" in block]
    (tmp_path / "mini.py").write_text(snippet)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "mini.py"), "--profile", "smoke", "--dry-run"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "cifar_plain20" in done.stdout and "cifar_resnet20" in done.stdout
