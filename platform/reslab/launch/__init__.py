"""Running a study on Ray Tune: the command line, preparation, the tuner, the trial and its callbacks.

`main` is the command line every study file ends with; it imports Ray only when a study runs, so a study
file imports (and `--plan` answers) without it.
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
