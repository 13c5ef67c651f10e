"""A trial as Ray Tune holds it (`{"trial": point, "sampled": values}`), read into tracking's typed record:
the one place that knows the layout of Tune's params, for the live callback and for the sync alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layout import trial_label
from .writer import TrialRecord


def trial_record(trial_id: str, params: Mapping[str, Any]) -> TrialRecord:
    """The typed record of a trial, from the params the study gave Tune (`{"trial": point, "sampled": ...}`)."""
    point = params["trial"]
    return TrialRecord(
        trial_id=trial_id,
        label=trial_label(dict(params)),
        seed=int(point["seed"]),
        config=point["config"],
        sampled=dict(params.get("sampled") or {}),
        early_stopping=bool(point["early_stopping"]),
    )


def error_reason(error: BaseException | str | None) -> str:
    """An error's first line with its type, e.g. "ValueError: ...": the reason a failed trial records."""
    if error is None:
        return "the trial raised an error (see error.txt in its trial folder)"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return next((line for line in text.splitlines() if line.strip()), text)[:500]
