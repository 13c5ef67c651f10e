"""How many seeds each variant of a study needs for its claims to be decided: sized by power, per claim, on
the claim's own metric.

A claim's margin is the effect it expects: the gap between the paper's numbers when the claim is on the
paper's tables' metric (test error), or the smallest effect the claim declares (`Claim.margin`) where the
paper only draws figures; a "similar" claim is sized at no gap inside its bound. One seed's spread (sigma) is the
study's own (its finished seeds, three or more per arm) or a declared prior (`SIGMA_PRIORS`). Seeds per arm
are the fewest that decide the claim with 80 % power at the familywise rate split over the study's claims
(Bonferroni: Holm's first step, the hardest), capped by the profile. A variant runs the most any of its
claims asks for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..results.claims import Claim
from ..results.stats import FAMILYWISE, seeds_for_power
from ..results.summary import TrialOutcome
from ..results.verdicts import finished_values

# One seed's standard deviation (points of error), by dataset and metric, with where it comes from.
SIGMA_PRIORS: dict[tuple[str, str], tuple[float, str]] = {
    ("cifar10", "test_error"): (0.16, "Table 6: ResNet-110, 6.61 ± 0.16 over 5 runs"),
    ("cifar10", "test_error_late"): (0.16, "as the final test error (Table 6)"),
    ("cifar10", "train_error"): (0.16, "assumed as the test error's: the paper gives no training-error spread"),
    ("cifar10", "train_error_late"): (0.16, "assumed as the test error's: the paper gives no training-error spread"),
    ("imagenet", "test_error_10crop"): (0.15, "assumed: the paper reports one run per net"),
    ("imagenet", "test_error"): (0.15, "assumed: the paper reports one run per net"),
    ("imagenet", "train_error"): (0.15, "assumed: the paper reports one run per net"),
    ("imagenet", "train_error_late"): (0.15, "assumed: the paper reports one run per net"),
    ("cifar10", "response_std"): (0.05, "assumed: the paper shows one run per net (Fig. 7)"),
}
TABLE_METRICS = ("test_error", "test_error_10crop")  # the metrics the paper's numbers (`Study.paper`) are of
OWN_SIGMA_SEEDS = 3  # finished seeds per arm before a study's own spread replaces the prior


@dataclass(frozen=True)
class SeedNeed:
    """The seeds one variant runs for one claim, and why."""

    seeds: int
    claim: str  # the claim's id
    margin: float  # the effect it is sized to detect (for "similar": its bound)
    sigma: float
    sigma_source: str
    power: float  # at `seeds`
    capped: bool  # the profile's cap cut it below 80 % power


def claim_margin(claim: Claim, paper: Mapping[str, float]) -> float | None:
    """The effect a claim is sized for: a "similar" claim's bound, the paper's gap on its tables' metric, or
    the margin the claim declares; None when there is none to size by (its seeds stay as declared)."""
    if claim.kind == "similar":
        return claim.within
    if claim.metric in TABLE_METRICS and claim.lower in paper and claim.higher in paper:
        gap = paper[claim.higher] - paper[claim.lower]
        if gap > 0:  # (the paper's own numbers against its claim leave nothing to size for)
            return gap if claim.within is None else min(gap, claim.within - gap)
    return claim.margin


def spread(claim: Claim, dataset: str, outcomes: Sequence[TrialOutcome] = ()) -> tuple[float, str] | tuple[None, str]:
    """One seed's sigma for the claim's metric: pooled over its arms when each has OWN_SIGMA_SEEDS finished seeds,
    else the prior (None with a reason when there is neither)."""
    arms = [finished_values(outcomes, side, claim.metric) for side in claim.variants]
    if arms and all(len(arm) >= OWN_SIGMA_SEEDS for arm in arms):
        squares = sum(sum((v - sum(arm) / len(arm)) ** 2 for v in arm) for arm in arms)
        pooled = math.sqrt(squares / sum(len(arm) - 1 for arm in arms))
        return pooled, f"this study's seeds ({', '.join(str(len(a)) for a in arms)} per arm)"
    if (dataset, claim.metric) in SIGMA_PRIORS:
        return SIGMA_PRIORS[dataset, claim.metric]
    return None, f"no prior for {claim.metric} on {dataset}"


def seed_needs(
    claims: Sequence[Claim],
    paper: Mapping[str, float],
    dataset: str,
    cap: int,
    outcomes: Sequence[TrialOutcome] = (),
    familywise: float = FAMILYWISE,
) -> dict[str, SeedNeed]:
    """Per variant, the seeds its most demanding claim needs (variants no claim sizes are absent)."""
    alpha = familywise / max(1, len(claims))
    needs: dict[str, SeedNeed] = {}
    for claim in claims:
        margin = claim_margin(claim, paper)
        sigma, source = spread(claim, dataset, outcomes)
        if margin is None or sigma is None:
            continue
        if claim.kind == "similar":
            seeds, power = seeds_for_power(0.0, sigma, alpha, similar_within=margin, cap=cap)
        elif len(claim.variants) == 1:  # an absolute claim: one arm against a value, as two arms of sigma / sqrt(2)
            seeds, power = seeds_for_power(margin, sigma / math.sqrt(2), alpha, cap=cap)
        else:
            seeds, power = seeds_for_power(margin, sigma, alpha, cap=cap)
        need = SeedNeed(seeds, claim.id, margin, sigma, source, power, capped=power < 0.8)
        for label in claim.variants:
            if label not in needs or needs[label].seeds < seeds:
                needs[label] = need
    return needs
