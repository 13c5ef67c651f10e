"""The statistics behind a verdict: t intervals over seeds, the level at which an interval decides a claim,
Holm's step-down over a study's claims, and the seeds a claim needs for 80 % power.

One rule ties them together: a claim is decided ("holds" or "fails") when the whole confidence interval of
its effect lies in the region where the claim says the effect is, or in the region where it says it is not.
For an interval family that covers the true effect with probability 1 - a, a decision at level a is wrong
with probability at most a, so the smallest a at which the interval decides (`decision_level`) is a valid
p-value of "this decision is wrong", and Holm's step-down over those p-values keeps the chance of *any* wrong
decision in the study at or under its familywise rate. The simulation test checks this (docs/statistics.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FAMILYWISE = 0.05  # the chance of at least one wrong holds/fails among a study's claims
POWER = 0.8  # the chance of deciding a claim whose effect is at the paper's margin, seeds are sized for

Region = tuple[float, float]  # an open interval (low, high) of effects; math.inf for an unbounded side


@dataclass(frozen=True)
class Estimate:
    """An effect, its standard error and the degrees of freedom of its t distribution (Welch's for two arms,
    n - 1 for one). A spread of zero (identical seeds) gives a degenerate interval at the effect."""

    effect: float
    se: float
    df: float

    def interval(self, alpha: float) -> tuple[float, float]:
        """The two-sided 1 - alpha interval of the effect."""
        if self.se == 0:
            return self.effect, self.effect
        half = t_quantile(1 - alpha / 2, self.df) * self.se
        return self.effect - half, self.effect + half

    def level_inside(self, region: Region) -> float:
        """The smallest alpha whose interval lies wholly inside `region` (1.0 when the effect is outside it)."""
        low, high = region
        room = min(self.effect - low, high - self.effect)
        if room <= 0:
            return 1.0
        if self.se == 0:
            return 0.0
        return min(1.0, 2 * t_tail(room / self.se, self.df))


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy's ufunc: the simulation test calls it a million times)."""
    from scipy import special

    return float(special.ndtri(p) if math.isinf(df) else special.stdtrit(df, p))


def t_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    from scipy import special

    return float(special.ndtr(-t) if math.isinf(df) else special.stdtr(df, -t))


def _mean_var(values: Sequence[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = sum(values) / n
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1), n


def welch(lower: Sequence[float], higher: Sequence[float]) -> Estimate:
    """mean(higher) - mean(lower) by Welch's t (unequal variances); both arms need two or more values."""
    ma, va, na = _mean_var(lower)
    mb, vb, nb = _mean_var(higher)
    sa, sb = va / na, vb / nb
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1)) if se > 0 else math.inf
    return Estimate(mb - ma, se, df)


def one_sample(values: Sequence[float], reference: float, sign: float = 1.0) -> Estimate:
    """sign * (mean(values) - reference), by the one-sample t (two or more values)."""
    mean, var, n = _mean_var(values)
    return Estimate(sign * (mean - reference), math.sqrt(var / n), n - 1)


def decision_level(estimate: Estimate, holds: Sequence[Region], fails: Sequence[Region]) -> tuple[float, str]:
    """The smallest alpha at which the interval decides, and the decision ("holds" or "fails"); (1.0, "")
    when it decides at no level. Regions of one kind are alternatives (e.g. below 0 or above a bound)."""
    best = (1.0, "")
    for decision, regions in (("holds", holds), ("fails", fails)):
        for region in regions:
            level = estimate.level_inside(region)
            if level < best[0]:
                best = (level, decision)
    return best


def holm(levels: Sequence[float], familywise: float = FAMILYWISE) -> list[float]:
    """Holm's step-down: for each p-value, the level it is tested at (familywise / (m - rank)), or the level
    of the step where the procedure stopped for those it never reached; a p-value is rejected when it is at
    or under its level and every smaller one was rejected."""
    order = sorted(range(len(levels)), key=lambda i: levels[i])
    tested_at = [0.0] * len(levels)
    stopped, stop_level = False, familywise
    for rank, index in enumerate(order):
        level = familywise / (len(levels) - rank)
        if stopped:
            tested_at[index] = stop_level
            continue
        tested_at[index] = level
        if levels[index] > level:
            stopped, stop_level = True, level
    return tested_at


def seeds_for_power(
    margin: float, sigma: float, alpha: float, *, similar_within: float | None = None, cap: int = 64
) -> tuple[int, float]:
    """The fewest seeds per arm (at least 2) that decide a two-arm claim with POWER, and the power they
    reach (or the power at `cap` when even that is not enough): the true effect at `margin` for a
    directional claim, or at 0 inside +-`similar_within` for a "similar" one; sigma is one seed's standard
    deviation. Student's noncentral t for equal arms (Welch's df with equal variances is 2n - 2)."""
    from scipy import stats

    power = 0.0
    for n in range(2, cap + 1):
        se, df = sigma * math.sqrt(2 / n), 2 * n - 2
        critical = t_quantile(1 - alpha / 2, df)
        if similar_within is None:
            power = float(stats.nct.sf(critical, df, margin / se))
        else:  # |effect| + critical * se < within: both one-sided tails at once
            power = max(0.0, 1 - 2 * float(stats.nct.sf(similar_within / se - critical, df, 0.0)))
        if power >= POWER:
            return n, power
    return cap, power
