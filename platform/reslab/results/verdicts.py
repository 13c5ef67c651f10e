"""The verdict a study's finished trials give on each of its claims, and the evidence behind it.

Only evidence that can speak to the paper decides. A claim gets a *verdict* — holds, fails or inconclusive —
when its trials trained the paper's full schedule on the full training set with at least two finished seeds
per arm; the study's verdicts are one family, decided by Holm's step-down at a familywise 5 % (a wrong holds
or fails anywhere in the study at most one time in twenty: `results/stats.py`). Anything less is
*indicative*: the direction (and with two seeds the unadjusted interval) is shown with the reason, and it is
never counted as a verdict. *Not tested*: a smoke run, synthetic data, or an arm without a finished trial.

Diverged and failed trials are left out, as in the summary. No Ray or torch here: the dashboard reads these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .claims import Claim
from .stats import FAMILYWISE, Estimate, Region, decision_level, holm, one_sample, welch
from .summary import TrialOutcome

# the profiles whose schedules are long enough to show anything (smoke proves the pipeline, not the paper)
TESTING_PROFILES = ("quick", "paper")
FULL_TRAIN_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167}  # each dataset's whole training set
DECIDED = ("holds", "fails")
VERDICT_LEVEL = ("holds", "fails", "inconclusive")  # what the tally counts
INDICATIVE = "indicative"
NOT_TESTED = "not tested"
VERDICTS = (*VERDICT_LEVEL, INDICATIVE, NOT_TESTED)
EVIDENCE_RANK = {"verdict": 2, "indicative": 1, "none": 0}  # the scorecard keeps the strongest, then newest
INTERVAL = "95% Welch t interval; adjusted: Holm's step-down at a familywise 5%"
MIN_SEEDS = 2  # per arm, for an interval and for a verdict
SIDES = ("lower", "higher")


@dataclass(frozen=True)
class Evidence:
    """What a claim's trials can say: how much of the paper's schedule and training set they had, and how
    many finished seeds each arm has."""

    schedule: float  # the least fraction of the paper's schedule any of its trials trained (NaN: unknown)
    train_images: int  # the fewest training images any of them had (0: unknown)
    full_images: int  # the dataset's whole training set (0: unknown dataset)
    seeds: tuple[int, ...]  # finished seeds per arm

    def shortfalls(self) -> list[str]:
        """Why this evidence cannot give a verdict (empty when it can)."""
        found = []
        if not self.schedule >= 1:  # NaN too
            said = "an unknown part" if math.isnan(self.schedule) else f"{100 * self.schedule:.3g} %"
            found.append(f"trained {said} of the paper's schedule")
        if not (self.full_images and self.train_images >= self.full_images):
            found.append(
                f"{self.train_images:,} of {self.full_images:,} training images"
                if self.train_images and self.full_images
                else "on a training set of unknown size"
            )
        if min(self.seeds) < MIN_SEEDS:
            found.append(f"{min(self.seeds)} finished seed on an arm (a verdict needs {MIN_SEEDS})")
        return found

    @property
    def level(self) -> str:
        return "indicative" if self.shortfalls() else "verdict"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on one run of a study, with its evidence and both intervals."""

    claim: Claim
    verdict: str  # one of VERDICTS
    effect: float  # positive in the paper's direction (NaN when not tested)
    low: float  # the unadjusted 95 % interval of the effect (NaN with one seed on an arm)
    high: float
    n_lower: int  # finished trials on each side (an absolute claim: n_higher for "above", n_lower for "below")
    n_higher: int
    evidence: str = "none"  # "verdict", "indicative" or "none" (not tested)
    leans: str = ""  # indicative: what the unadjusted interval (one seed: the sign) would say
    adjusted_low: float = math.nan  # the interval at the level Holm tested this claim at (verdicts only)
    adjusted_high: float = math.nan
    alpha: float = math.nan  # that level
    p: float = math.nan  # the smallest level at which the interval decides the claim
    schedule: float = math.nan  # Evidence.schedule
    train_images: int = 0  # Evidence.train_images
    reason: str = ""  # why it is not tested or only indicative; for a curve, the evaluation that binds

    def as_row(self) -> dict[str, object]:
        c = self.claim
        return {
            "claim": c.id, "statement": c.text, "source": c.source, "metric": c.metric, "kind": c.kind,
            "lower": c.lower, "higher": c.higher, "within": c.within, "value": c.value,
            "transferred": c.transferred, "verdict": self.verdict, "evidence": self.evidence, "leans": self.leans,
            "effect": self.effect, "ci_low": self.low, "ci_high": self.high, "adj_low": self.adjusted_low,
            "adj_high": self.adjusted_high, "alpha": self.alpha, "p": self.p, "n_lower": self.n_lower,
            "n_higher": self.n_higher, "schedule": self.schedule, "train_images": self.train_images,
            "reason": self.reason,
        }  # fmt: skip


VERDICT_COLUMNS = list(Verdict(Claim("", "", "", ""), NOT_TESTED, 0, 0, 0, 0, 0).as_row())


def _finished(outcomes: Sequence[TrialOutcome], label: str) -> list[TrialOutcome]:
    return [o for o in outcomes if o.label == label and o.status == "finished"]


def _values(trials: Sequence[TrialOutcome], metric: str) -> list[float]:
    """The metric of each trial, errors in percent."""
    scale = 1.0 if metric == "response_std" else 100.0
    return [v for v in (scale * getattr(o, metric) for o in trials) if math.isfinite(v)]


def finished_values(outcomes: Sequence[TrialOutcome], label: str, metric: str) -> list[float]:
    """`metric` of every finished trial of `label` (errors in percent): what a claim's arm holds."""
    return _values(_finished(outcomes, label), metric)


def evidence_of(trials: Sequence[TrialOutcome], seeds: tuple[int, ...]) -> Evidence:
    schedule = min((o.schedule for o in trials), default=math.nan)
    images = min((o.train_images for o in trials), default=0)
    datasets = {o.dataset for o in trials}
    full = FULL_TRAIN_IMAGES.get(datasets.pop(), 0) if len(datasets) == 1 else 0
    return Evidence(schedule, images, full, seeds)


def regions(claim: Claim) -> tuple[list[Region], list[Region]]:
    """Where the claim puts its effect (holds) and where it denies it (fails)."""
    inf, w = math.inf, claim.within
    if claim.kind == "similar":
        return [(-w, w)], [(-inf, -w), (w, inf)]
    if claim.kind == "lower" and w is not None:
        return [(0.0, w)], [(-inf, 0.0), (w, inf)]
    return [(0.0, inf)], [(-inf, 0.0)]


@dataclass(frozen=True)
class _Test:
    """A claim's effect where the data give an interval: the estimate that binds and its decision level."""

    estimate: Estimate
    level: float
    decision: str
    note: str = ""


def _point_effect(claim: Claim, arms: dict[str, list[float]]) -> float:
    if claim.kind == "above":
        return sum(arms["higher"]) / len(arms["higher"]) - claim.value
    if claim.kind == "below":
        return claim.value - sum(arms["lower"]) / len(arms["lower"])
    return sum(arms["higher"]) / len(arms["higher"]) - sum(arms["lower"]) / len(arms["lower"])


def _estimate(claim: Claim, arms: dict[str, list[float]]) -> Estimate:
    if claim.kind == "above":
        return one_sample(arms["higher"], claim.value)
    if claim.kind == "below":
        return one_sample(arms["lower"], claim.value, sign=-1.0)
    return welch(arms["lower"], arms["higher"])


def _curve_test(claim: Claim, lower: Sequence[TrialOutcome], higher: Sequence[TrialOutcome]) -> _Test | None:
    """ "Lower at every evaluation from `from_fraction` of training on": an intersection-union test (holds at
    level a when every evaluation's interval does, so no adjustment over evaluations) against a union one
    for fails (some evaluation's interval on the wrong side, Bonferroni over the evaluations)."""
    planned = max(o.iterations for o in (*lower, *higher))
    start, end = claim.from_fraction * planned, claim.until_fraction * planned

    def by_step(trial: TrialOutcome) -> dict[int, float]:
        curve = trial.curves.get(claim.metric, ())
        return {step: 100 * v for step, v in curve if start <= step <= end and math.isfinite(v)}

    curves = [by_step(o) for o in (*lower, *higher)]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if not steps:
        return None
    holds, fails = regions(claim)
    points = []
    for step in steps:
        estimate = welch([c[step] for c in curves[: len(lower)]], [c[step] for c in curves[len(lower) :]])
        points.append((step, estimate, estimate.level_inside(holds[0]), estimate.level_inside(fails[0])))
    binding = max(points, key=lambda p: p[2])  # the evaluation where the claim is weakest
    worst = min(points, key=lambda p: p[3])
    level_holds, level_fails = binding[2], min(1.0, len(points) * worst[3])
    note = f"weakest of {len(points)} evaluations from iteration {steps[0]}: iteration {binding[0]}"
    if level_fails < level_holds:
        return _Test(worst[1], level_fails, "fails", f"reversed at iteration {worst[0]} of {len(points)} evaluations")
    return _Test(binding[1], level_holds, "holds" if level_holds < 1 else "", note)


def _side_of(effect: float, claim: Claim) -> str:
    """Where a single estimate falls (one seed: no interval): what it would say, were it exact."""
    holds, fails = regions(claim)
    if any(low < effect < high for low, high in holds):
        return "holds"
    return "fails" if any(low < effect < high for low, high in fails) else "inconclusive"


def judge_claims(
    claims: Sequence[Claim], outcomes: Sequence[TrialOutcome], untestable: str = "", familywise: float = FAMILYWISE
) -> list[Verdict]:
    """The verdict on every claim of a study from its trials' `outcomes`; `untestable` says why this run
    cannot test any claim (the profile, synthetic data). The claims whose evidence suffices are one family
    under Holm's step-down at `familywise`."""
    judged = [_judge_alone(claim, outcomes, untestable) for claim in claims]
    family = [i for i, j in enumerate(judged) if isinstance(j, tuple)]
    levels = holm([judged[i][1].level for i in family], familywise)
    for index, alpha in zip(family, levels, strict=True):
        claim, test, evidence, n = judged[index]
        decided = test.decision and test.level <= alpha
        judged[index] = Verdict(
            claim, test.decision if decided else "inconclusive", test.estimate.effect, *test.estimate.interval(0.05),
            *n, "verdict", "", *test.estimate.interval(alpha), alpha, test.level, evidence.schedule,
            evidence.train_images, test.note,
        )  # fmt: skip
    return judged


def _judge_alone(
    claim: Claim, outcomes: Sequence[TrialOutcome], untestable: str
) -> Verdict | tuple[Claim, _Test, Evidence, tuple[int, int]]:
    """A claim's verdict where it needs no family (not tested, indicative), else what Holm's step-down needs."""
    nan = math.nan
    trials = {side: _finished(outcomes, getattr(claim, side)) if getattr(claim, side) else [] for side in SIDES}
    arms = {side: _values(trials[side], claim.metric) for side in SIDES}
    n = (len(arms["lower"]), len(arms["higher"]))
    if missing := [getattr(claim, side) for side in SIDES if getattr(claim, side) and not arms[side]]:
        untestable = untestable or f"no finished trial of {', '.join(missing)}"
    if untestable:
        return Verdict(claim, NOT_TESTED, nan, nan, nan, *n, reason=untestable)
    counts = tuple(len(arms[side]) for side in SIDES if getattr(claim, side))
    evidence = evidence_of([o for side in SIDES for o in trials[side]], counts)
    known = {"schedule": evidence.schedule, "train_images": evidence.train_images, "evidence": INDICATIVE}
    reason = "; ".join(evidence.shortfalls())
    if min(counts) < MIN_SEEDS:
        effect = _point_effect(claim, arms)
        return Verdict(claim, INDICATIVE, effect, nan, nan, *n, leans=_side_of(effect, claim), reason=reason, **known)
    if claim.from_fraction is None:
        estimate = _estimate(claim, arms)
        test = _Test(estimate, *decision_level(estimate, *regions(claim)))
    elif (test := _curve_test(claim, trials["lower"], trials["higher"])) is None:
        span = f"{claim.from_fraction:.0%} to {claim.until_fraction:.0%} of training"
        reason = f"no evaluation from {span} common to every trial"
        return Verdict(claim, NOT_TESTED, nan, nan, nan, *n, reason=reason)
    if evidence.level == "verdict":
        return claim, test, evidence, n
    leans = test.decision if test.level <= 0.05 else "inconclusive"
    reason = "; ".join(filter(None, [reason, test.note]))
    low, high = test.estimate.interval(0.05)
    return Verdict(claim, INDICATIVE, test.estimate.effect, low, high, *n, leans=leans, p=test.level, reason=reason,
                   **known)  # fmt: skip


def judge(claim: Claim, outcomes: Sequence[TrialOutcome], untestable: str = "") -> Verdict:
    """One claim judged alone (a family of one)."""
    return judge_claims([claim], outcomes, untestable)[0]


def untestable_reason(profile: str, dataset: str) -> str:
    """Why a run of this profile on this dataset cannot speak to the paper's claims ("" when it can)."""
    if dataset == "synthetic":
        return "synthetic data: not comparable with the paper"
    if profile not in TESTING_PROFILES:
        return f"the {profile} profile is too short to test the paper's claims"
    return ""


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per claim: what verdicts.csv holds."""
    return pd.DataFrame([v.as_row() for v in verdicts], columns=VERDICT_COLUMNS)


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def verdict_text(verdict: str, leans: object, reason: object) -> str:
    """A verdict as a reader sees it: "holds", or "indicative, leans holds (3 % of the schedule)"."""
    reason = reason if isinstance(reason, str) and reason else ""
    if verdict == INDICATIVE:
        lean = f", leans {leans}" if isinstance(leans, str) and leans else ""
        return f"indicative{lean}" + (f" ({reason})" if reason else "")
    if verdict == NOT_TESTED:
        return f"not tested ({reason})" if reason else verdict
    return verdict


def verdicts_markdown(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a Markdown section: claim, verdict or what the evidence lacks, effect with both
    intervals, n per side; reslab's own (transferred) claims marked."""
    lines = [
        f"### The paper's claims (effect: positive in the claim's direction; {INTERVAL})",
        "",
        "| claim | source | verdict | effect | 95% interval | adjusted interval | n |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in verdicts:
        effect = "—" if math.isnan(v.effect) else f"{v.effect:+.2f}"
        text = v.claim.text + (" (reslab's claim, transferred from the paper)" if v.claim.transferred else "")
        verdict = verdict_text(v.verdict, v.leans, v.reason)
        n = "/".join(str(c) for c, side in ((v.n_lower, v.claim.lower), (v.n_higher, v.claim.higher)) if side)
        lines.append(
            f"| {text} | {v.claim.source} | {verdict} | {effect} | {_interval(v.low, v.high)} | "
            f"{_interval(v.adjusted_low, v.adjusted_high)} | {n} |"
        )
    decided = sum(v.evidence == "verdict" for v in verdicts)
    lines += [
        "",
        f"{decided} of {len(verdicts)} claims have the evidence for a verdict (the paper's full schedule, the full "
        f"training set, {MIN_SEEDS}+ seeds per arm); indicative results are never counted as verdicts.",
    ]
    return "\n".join(lines) + "\n"
