"""The paper's comparative claims as data, and the verdict a study's finished trials give on each.

A study file lists its claims next to the paper's numbers: "plain-34 has a higher training error than
plain-18" is `Claim(..., metric="train_error", lower="plain18", higher="plain34")`. After the study every
claim gets a verdict from the finished trials (diverged and failed ones are left out, as in the summary):

- *holds* / *fails* / *inconclusive* with two or more seeds on each side: the effect (mean of `higher` minus
  mean of `lower`, so positive is the paper's direction) and its 95 % Welch interval decide;
- *holds (1 seed)* / *fails (1 seed)* when a side has a single seed: the sign of the effect alone;
- *not tested* when the run cannot speak to the paper: a profile too short (smoke), synthetic data, or a
  variant without a finished trial.

No Ray or torch here: the dashboard reads verdicts too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from .summary import TrialOutcome

METRICS = {
    "train_error": "final training error (%)",
    "test_error": "final test error (%)",
    "test_error_10crop": "final 10-crop test error (%): the test of the paper's ImageNet tables",
    "train_error_late": "training error over the last quarter of training (%)",
    "test_error_late": "test error over the last quarter of training (%)",
    "response_std": "mean std of the 3x3 layers' responses",
}
KINDS = ("lower", "similar")
# the profiles whose schedules are long enough to test a claim (smoke proves the pipeline, not the paper)
TESTING_PROFILES = ("quick", "paper")
NOT_TESTED = "not tested"
HOLDS = ("holds", "holds (1 seed)")
VERDICTS = (*HOLDS, "fails", "inconclusive", "fails (1 seed)", NOT_TESTED)
INTERVAL = "95% Welch t interval"


@dataclass(frozen=True)
class Claim:
    """One comparative statement of the paper: `lower` has a lower `metric` than `higher` (kind "lower"; by
    less than `within` where the paper bounds the gap), or the two are within `within` of each other (kind
    "similar")."""

    id: str  # short and stable: what the scorecard keys on, e.g. "plain34-trains-worse-than-plain18"
    text: str  # the paper's statement, in its words where possible
    source: str  # where the paper makes it, e.g. "Table 2 / Fig. 4"
    metric: str  # a key of METRICS
    lower: str  # the variant label expected lower (either one, for "similar")
    higher: str  # the variant label expected higher
    within: float | None = None  # "lower": the gap is under this; "similar": |gap| is under this
    kind: str = "lower"

    def problems(self, labels: Iterable[str]) -> list[str]:
        """What is wrong with the claim for a study whose variants have `labels`."""
        labels, found = set(labels), []
        if self.metric not in METRICS:
            found.append(f"claim {self.id}: unknown metric {self.metric!r}; valid: {', '.join(METRICS)}")
        if self.kind not in KINDS:
            found.append(f"claim {self.id}: unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "similar" and self.within is None:
            found.append(f"claim {self.id}: a 'similar' claim needs `within`")
        for side in (self.lower, self.higher):
            if side not in labels:
                found.append(f"claim {self.id}: no variant {side!r}; variants: {', '.join(sorted(labels))}")
        return found


def falls_with(ids: str, text: str, source: str, metric: str, labels: Sequence[str]) -> tuple[Claim, ...]:
    """A trend ("error falls with depth 20 -> 110") as one claim per adjacent pair of `labels`, each deeper
    (later) variant lower than the one before: every step is checked, none hides behind the ends."""
    return tuple(
        Claim(f"{ids}-{a}-{b}", f"{text}: {b} below {a}", source, metric, lower=b, higher=a)
        for a, b in itertools.pairwise(labels)
    )


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on one run of a study, with the evidence."""

    claim: Claim
    verdict: str  # one of VERDICTS
    effect: float  # mean(higher) - mean(lower): positive in the paper's direction (NaN when not tested)
    low: float  # the 95 % interval of the effect (NaN with a single seed on a side)
    high: float
    n_lower: int  # finished trials on each side
    n_higher: int
    reason: str = ""  # why it is not tested or single-seed

    def as_row(self) -> dict[str, object]:
        c = self.claim
        return {
            "claim": c.id,
            "statement": c.text,
            "source": c.source,
            "metric": c.metric,
            "lower": c.lower,
            "higher": c.higher,
            "within": c.within,
            "verdict": self.verdict,
            "effect": self.effect,
            "ci_low": self.low,
            "ci_high": self.high,
            "n_lower": self.n_lower,
            "n_higher": self.n_higher,
            "reason": self.reason,
        }


def _values(outcomes: Sequence[TrialOutcome], label: str, metric: str) -> list[float]:
    """The metric of each finished trial of `label`, errors in percent."""
    scale = 1.0 if metric == "response_std" else 100.0
    values = [scale * getattr(o, metric) for o in outcomes if o.label == label and o.status == "finished"]
    return [v for v in values if math.isfinite(v)]


def welch_interval(lower: Sequence[float], higher: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The `level` interval of mean(higher) - mean(lower) by Welch's t (unequal variances); both sides need
    two or more values."""
    from scipy import stats

    a, b = pd.Series(lower, dtype=float), pd.Series(higher, dtype=float)
    effect = b.mean() - a.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return effect, effect
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return effect - half, effect + half


def judge(claim: Claim, outcomes: Sequence[TrialOutcome], untestable: str = "") -> Verdict:
    """The verdict of the finished trials in `outcomes` on `claim`; `untestable` says why this run cannot
    test any claim (the profile, synthetic data), making it *not tested*."""
    lower, higher = _values(outcomes, claim.lower, claim.metric), _values(outcomes, claim.higher, claim.metric)
    n = (len(lower), len(higher))
    nan = math.nan
    if untestable:
        return Verdict(claim, NOT_TESTED, nan, nan, nan, *n, reason=untestable)
    missing = [side for side, values in ((claim.lower, lower), (claim.higher, higher)) if not values]
    if missing:
        return Verdict(claim, NOT_TESTED, nan, nan, nan, *n, reason=f"no finished trial of {', '.join(missing)}")
    effect = sum(higher) / len(higher) - sum(lower) / len(lower)
    if min(n) < 2:
        verdict = "holds (1 seed)" if _agrees(claim, effect, effect) else "fails (1 seed)"
        return Verdict(claim, verdict, effect, nan, nan, *n, reason="one seed on a side: no interval")
    low, high = welch_interval(lower, higher)
    if _agrees(claim, low, high):
        verdict = "holds"
    elif _contradicts(claim, low, high):
        verdict = "fails"
    else:
        verdict = "inconclusive"
    return Verdict(claim, verdict, effect, low, high, *n)


def _agrees(claim: Claim, low: float, high: float) -> bool:
    """The whole interval [low, high] of the effect is where the claim says it is."""
    if claim.kind == "similar":
        return -claim.within < low and high < claim.within
    return low > 0 and (claim.within is None or high < claim.within)


def _contradicts(claim: Claim, low: float, high: float) -> bool:
    """The whole interval is where the claim says it is not."""
    if claim.kind == "similar":
        return low > claim.within or high < -claim.within
    return high < 0 or (claim.within is not None and low > claim.within)


def untestable_reason(profile: str, dataset: str) -> str:
    """Why a run of this profile on this dataset cannot test the paper's claims ("" when it can)."""
    if dataset == "synthetic":
        return "synthetic data: not comparable with the paper"
    if profile not in TESTING_PROFILES:
        return f"the {profile} profile is too short to test the paper's claims"
    return ""


VERDICT_COLUMNS = [
    "claim", "statement", "source", "metric", "lower", "higher", "within", "verdict", "effect", "ci_low", "ci_high",
    "n_lower", "n_higher", "reason",
]  # fmt: skip


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per claim: what verdicts.csv holds."""
    return pd.DataFrame([v.as_row() for v in verdicts], columns=VERDICT_COLUMNS)


def verdicts_markdown(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a Markdown section: claim, verdict, effect with its interval, n per side."""
    lines = [
        f"### The paper's claims (effect: mean of the higher side minus the lower; {INTERVAL})",
        "",
        "| claim | source | verdict | effect | 95% interval | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v in verdicts:
        effect = "—" if math.isnan(v.effect) else f"{v.effect:+.2f}"
        interval = "—" if math.isnan(v.low) else f"[{v.low:+.2f}, {v.high:+.2f}]"
        verdict = f"{v.verdict} ({v.reason})" if v.verdict == NOT_TESTED else v.verdict
        lines.append(
            f"| {v.claim.text} | {v.claim.source} | {verdict} | {effect} | {interval} | {v.n_lower}/{v.n_higher} |"
        )
    return "\n".join(lines) + "\n"
