"""The paper's claims as data: what a study checks, by kind, on which metric, with which margin.

A study file lists its claims next to the paper's numbers: "plain-34 has a higher training error than
plain-18" is `Claim(..., metric="train_error", lower="plain18", higher="plain34")`. Kinds:

- *lower*: `lower` has a lower metric than `higher` (by less than `within` where the paper bounds the gap);
  with `from_fraction`, at every evaluation from that fraction of training on (a curve: "throughout training"),
  up to `until_fraction` ("faster at the early stage");
- *similar*: the two are within `within` of each other;
- *above* / *below*: one variant's metric is above (`higher=`) or below (`lower=`) a `value` ("plain-110's
  training error is above 60 %").

`results/verdicts.py` judges them. No Ray or torch here: the dashboard reads claims too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

METRICS = {
    "train_error": "final training error (%)",
    "test_error": "final test error (%)",
    "test_error_10crop": "final 10-crop test error (%): the test of the paper's ImageNet tables",
    "train_error_late": "training error over the last quarter of training (%)",
    "test_error_late": "test error over the last quarter of training (%)",
    "response_std": "mean std of the 3x3 layers' responses",
}
CURVE_METRICS = ("train_error", "test_error")  # what a claim with `from_fraction` reads at every evaluation
KINDS = ("lower", "similar", "above", "below")


@dataclass(frozen=True)
class Claim:
    """One statement of the paper (or, `transferred`, of reslab: the paper's statement tested on another
    dataset) about a metric of the study's variants; see the module's docstring for the kinds."""

    id: str  # short and stable: what the scorecard keys on, e.g. "plain34-trains-worse-than-plain18"
    text: str  # the paper's statement, in its words where possible
    source: str  # where the paper makes it, e.g. "Table 2 / Fig. 4"
    metric: str  # a key of METRICS
    lower: str = ""  # the variant expected lower (either one, for "similar"; the variant of "below")
    higher: str = ""  # the variant expected higher (the variant of "above")
    within: float | None = None  # "lower": the gap is under this; "similar": |gap| is under this
    kind: str = "lower"
    value: float | None = None  # "above" / "below": the bound, in the metric's units (errors in %)
    from_fraction: float | None = None  # "lower" on a curve: at every evaluation from this part of training on
    until_fraction: float = 1.0  # ... up to this part ("faster convergence at the early stage": 0.25)
    # the smallest effect the claim expects, in the metric's units, where the paper gives no numbers for its
    # metric (its figures only): what its seeds are sized to detect (`results/power.py`)
    margin: float | None = None
    transferred: bool = False  # the paper states it for another dataset: reslab's claim, off the paper's tally

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants the claim reads: two, or one for an absolute claim."""
        return tuple(side for side in (self.lower, self.higher) if side)

    def problems(self, labels: Iterable[str]) -> list[str]:
        """What is wrong with the claim for a study whose variants have `labels`."""
        labels, found = set(labels), []
        where = f"claim {self.id}"
        if self.metric not in METRICS:
            found.append(f"{where}: unknown metric {self.metric!r}; valid: {', '.join(METRICS)}")
        if self.kind not in KINDS:
            found.append(f"{where}: unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "similar" and self.within is None:
            found.append(f"{where}: a 'similar' claim needs `within`")
        absolute = self.kind in ("above", "below")
        if absolute and (self.value is None or len(self.variants) != 1):
            side = "higher" if self.kind == "above" else "lower"
            found.append(f"{where}: an {self.kind!r} claim needs `value` and one variant, as `{side}=`")
        if absolute and self.variants and (self.lower if self.kind == "above" else self.higher):
            found.append(f"{where}: an 'above' claim names its variant as higher=, a 'below' one as lower=")
        if not absolute and (not self.lower or not self.higher):
            found.append(f"{where}: a {self.kind!r} claim needs both `lower` and `higher`")
        if self.from_fraction is not None:
            if self.kind != "lower" or self.metric not in CURVE_METRICS:
                found.append(f"{where}: `from_fraction` is for 'lower' claims on {' or '.join(CURVE_METRICS)}")
            if not 0 <= self.from_fraction < self.until_fraction <= 1:
                found.append(
                    f"{where}: need 0 <= from_fraction < until_fraction <= 1, got {self.from_fraction!r} and "
                    f"{self.until_fraction!r}"
                )
        if self.margin is not None and not self.margin > 0:
            found.append(f"{where}: margin must be positive, got {self.margin!r}")
        for side in self.variants:
            if side not in labels:
                found.append(f"{where}: no variant {side!r}; variants: {', '.join(sorted(labels))}")
        return found


def falls_with(
    ids: str, text: str, source: str, metric: str, labels: Sequence[str], **more: object
) -> tuple[Claim, ...]:
    """A trend ("error falls with depth 20 -> 110") as one claim per adjacent pair of `labels`, each deeper
    (later) variant lower than the one before: every step is checked, none hides behind the ends. `more`
    goes to every claim (e.g. margin=, transferred=)."""
    return tuple(
        Claim(f"{ids}-{a}-{b}", f"{text}: {b} below {a}", source, metric, lower=b, higher=a, **more)
        for a, b in itertools.pairwise(labels)
    )
