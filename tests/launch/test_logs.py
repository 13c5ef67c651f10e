"""Library code logs to the `reslab` logger and sets up nothing; the command lines send it to stderr."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from reslab.logs import configure_logging


def test_importing_reslab_sets_up_no_logging() -> None:
    """A notebook keeps its own logging: importing the library's modules adds no handler anywhere."""
    probe = (
        "import logging, reslab.launch.run, reslab.tracking.writer, reslab.launch.callbacks;"
        "print(len(logging.getLogger('reslab').handlers), len(logging.getLogger().handlers))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "0"]


def test_the_command_lines_print_reslab_logs_once_on_stderr_and_a_user_can_quiet_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger().addHandler(root := logging.StreamHandler(sys.stdout))  # as Ray or MLflow may add one
    try:
        configure_logging()
        configure_logging()  # twice (a second command in one process): still one line per message
        writer = logging.getLogger("reslab.tracking.writer")
        writer.warning("could not log the model of run %s: %s", "r1", "OSError: disk full")
        writer.info("MLflow store answers again")
        writer.debug("not shown without --verbose")
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [
            "warning: could not log the model of run r1: OSError: disk full",
            "MLflow store answers again",
        ]
        assert captured.out == ""  # not passed on to the root logger's handler
        logging.getLogger("reslab").setLevel(logging.ERROR)  # what a user does to quiet reslab
        writer.warning("quiet now")
        assert capsys.readouterr().err == ""
        configure_logging(verbose=True)
        writer.debug("shown with --verbose")
        assert capsys.readouterr().err == "shown with --verbose\n"
    finally:
        logging.getLogger().removeHandler(root)
        logger = logging.getLogger("reslab")
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
