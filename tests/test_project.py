"""Project wiring: CI runs exactly the README's test command."""

from __future__ import annotations

import re

from conftest import REPO


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"\*\*Test\*\*.*?```bash\n(.+?)\n```", readme, flags=re.S)
    assert match, "README.md has a **Test** section with one bash command"
    assert match.group(1).strip() in (REPO / ".ci" / "run").read_text()
