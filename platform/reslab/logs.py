"""reslab's log: library code logs to the `reslab` logger; the command lines decide where it goes.

A notebook or another program that imports reslab keeps its own logging setup (a library sets none):
it can quiet reslab with `logging.getLogger("reslab").setLevel(logging.WARNING)` or send it elsewhere.
The `reslab` and study commands call `configure_logging` once, so their messages read as before: one
plain line each on stderr, warnings marked.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "reslab"


class _PlainFormatter(logging.Formatter):
    """`message` for information, `warning: message` for warnings and errors: what a command line prints."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a message comes (a test's capture, a redirected stream)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def configure_logging(verbose: bool = False) -> None:
    """Send the `reslab` logger to stderr (INFO, or DEBUG with --verbose); called by the command lines only.
    Calling it again replaces the handler rather than adding a second one."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_PlainFormatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # Ray or MLflow may give the root logger a handler: each line once
