"""A study: the variants of one ablation, crossed with seeds, trained under one profile.

A study file in `studies/` declares a `Study`; everything else (validation, the trial grid, Ray Tune,
the summary beside the paper's numbers) is shared. `validate()` reports every problem before Ray
starts or anything is logged.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..models import ModelSpec
from ..models.paper import MORE_TEST_ERROR, TEST_ERROR
from ..results.claims import Claim
from ..results.summary import MORE_TESTS, TrialOutcome
from ..tracking.layout import name_problem, variant_label
from ..training import Recipe, TrainConfig, paper_recipe
from ..training.config import MAX_SEED
from .power import SeedNeed, seed_needs

RECIPE_KEYS = frozenset(f.name for f in fields(Recipe))
CONFIG_KEYS = frozenset(f.name for f in fields(TrainConfig)) - {"recipe", "seed", "data_dir", "dataset"}
VARIANT_KEYS = RECIPE_KEYS | CONFIG_KEYS | {"seeds"}  # "seeds": this variant's own seeds (e.g. 5 runs of ResNet-110)


@dataclass(frozen=True)
class Profile:
    """How long a study's trials train, and on what data when none is given."""

    name: str  # "smoke", "quick" or "paper"
    iterations: int | None  # SGD steps per trial; None = the paper's full schedule
    eval_every: int  # iterations between reports (and checkpoints)
    batch_size: int | None = None  # None = the recipe's (128 on CIFAR, 256 on ImageNet)
    synthetic_without_data: bool = False  # no --data-dir: train on the synthetic set instead of failing
    max_seeds: int | None = None  # run only the first seeds of the study
    # add seeds where a claim needs them for 80 % power (`study/power.py`), up to this many per variant; None:
    # the declared seeds (a profile whose results are only indicative has no power to size)
    power_seeds: int | None = None

    def apply(self, recipe: Recipe) -> Recipe:
        """The recipe shortened to this profile (milestones keep their fractions)."""
        if self.iterations is not None:
            recipe = recipe.scaled(self.iterations)
        return replace(recipe, batch_size=self.batch_size) if self.batch_size else recipe


PROFILES: dict[str, Profile] = {
    # the whole study in a few minutes on 2 CPU cores: proves the pipeline, not the paper
    "smoke": Profile("smoke", iterations=24, eval_every=12, batch_size=32, synthetic_without_data=True, max_seeds=1),
    # real data, a schedule long enough to show the paper's direction
    "quick": Profile("quick", iterations=2000, eval_every=200),
    # the recipe of PAPER.md
    "paper": Profile("paper", iterations=None, eval_every=1000, power_seeds=20),
}


def grid(**axes: list[Any] | tuple[Any, ...]) -> tuple[dict[str, Any], ...]:
    """The cross product of the axes as variants: grid(model=[a, b], shortcut=["A", "B"]) -> 4 dicts."""
    names = list(axes)
    return tuple(dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values()))


@dataclass(frozen=True)
class Search:
    """A hyperparameter search instead of a grid: Optuna's TPE sampler proposes recipe values drawn
    log-uniformly from `space`, and ASHA stops trials that fall behind at its rungs."""

    space: Mapping[str, tuple[float, float]]  # recipe field -> (low, high), sampled log-uniformly
    samples: Mapping[str, int]  # trials to sample per profile, e.g. {"smoke": 4, "quick": 16, "paper": 32}
    grace_fraction: float = 0.25  # ASHA's first rung, as a fraction of the schedule
    reduction_factor: int = 2  # ASHA keeps the best 1/reduction_factor at each rung

    def problems(self) -> list[str]:
        found = [
            f"search.space.{k}: not a recipe field; valid: {', '.join(sorted(RECIPE_KEYS))}"
            for k in self.space
            if k not in RECIPE_KEYS
        ]
        found += [
            f"search.space.{k}: need 0 < low < high, got {v!r}"
            for k, v in self.space.items()
            if not (len(v) == 2 and 0 < v[0] < v[1])
        ]
        found += [
            f"search.samples.{k}: unknown profile; valid: {', '.join(PROFILES)}"
            for k in self.samples
            if k not in PROFILES
        ]
        found += [f"search.samples.{k}: need at least 1 trial, got {n!r}" for k, n in self.samples.items() if n < 1]
        if not 0 < self.grace_fraction <= 1:
            found.append(f"search.grace_fraction: must be in (0, 1], got {self.grace_fraction!r}")
        if self.reduction_factor < 2:
            found.append(f"search.reduction_factor: must be >= 2, got {self.reduction_factor!r}")
        return found


@dataclass(frozen=True)
class Trial:
    """One grid point x seed: the config a Ray trial trains, and where it belongs in the summary."""

    label: str  # the variant's label
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class Study:
    """An ablation: shared settings, the variants it compares, seeds, and the paper's numbers."""

    name: str  # experiment name; also the folder of its results
    title: str  # what it reproduces, e.g. "Table 3: shortcut options on ResNet-34"
    dataset: str  # "cifar10" or "imagenet" (smoke runs without data use the synthetic set)
    variants: tuple[Mapping[str, Any], ...]  # each overrides the settings; keys: TrainConfig or Recipe fields
    seeds: tuple[int, ...] = (0,)  # every variant runs once per seed
    settings: Mapping[str, Any] = field(default_factory=dict)  # applied to every variant first
    # the paper's test error (%) by variant label: `models.paper`'s number for each variant's net, and these
    # on top (a number the paper gives for another net, or for a variant whose net it does not name)
    paper: Mapping[str, float] = field(default_factory=dict)
    # the paper's numbers for its other final tests, by metric then variant (top-5 of Table 3, Table 4's
    # multi-scale top-1 and top-5: see summary.MORE_TESTS), from `models.paper` and these on top
    paper_more: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    metric: str = "test_error"  # what "best" means (lower is better); a search selects on "validation_error"
    layer_responses: bool = False  # also measure Fig. 7's per-layer response std at the end of each trial
    search: Search | None = None  # sample the recipe instead of crossing a grid (one base variant)
    claims: tuple[Claim, ...] = ()  # the paper's comparative claims this study checks (see results/claims.py)

    def __post_init__(self) -> None:
        """The paper's numbers for the study's nets, as `models.paper` has them, under the given ones (not for a
        search: its recipe is not the paper's)."""
        if self.search is not None:
            return
        nets = {variant_label(v): _net({**self.settings, **v}) for v in self.variants}
        paper = {label: TEST_ERROR[net] for label, net in nets.items() if net in TEST_ERROR}
        object.__setattr__(self, "paper", {**paper, **self.paper})
        more = {
            metric: {label: by_net[net] for label, net in nets.items() if net in by_net}
            for metric, by_net in MORE_TEST_ERROR.items()
        }
        given = {metric: dict(by_variant) for metric, by_variant in self.paper_more.items()}
        merged = {m: {**more.get(m, {}), **given.get(m, {})} for m in {*more, *given}}
        object.__setattr__(self, "paper_more", {m: by for m, by in sorted(merged.items()) if by})

    def problems(self, profile: str = "smoke", data_dir: str | None = None) -> list[str]:
        """Every problem with the study, by path, without building anything."""
        found = [problem] if (problem := name_problem("study", self.name)) else []
        if profile not in PROFILES:
            found.append(f"profile: unknown {profile!r}; valid: {', '.join(PROFILES)}")
        if not self.variants:
            found.append("variants: the study has no variants (empty grid)")
        for where, seeds in [("seeds", self.seeds)] + [
            (f"variants[{i}].seeds", v["seeds"]) for i, v in enumerate(self.variants) if "seeds" in v
        ]:
            if not seeds or any(not isinstance(s, int) or not 0 <= s <= MAX_SEED for s in seeds):
                found.append(f"{where}: need at least one integer seed from 0 to {MAX_SEED}, got {seeds!r}")
        if self.search is not None:
            found += self.search.problems()
            if len(self.variants) != 1:
                found.append(f"variants: a search study has exactly one base variant, got {len(self.variants)}")
            if self.metric != "validation_error":  # the paper chose its schedule on 45k/5k, never on the test set
                found.append(
                    f"metric: a search selects on a validation split, never the test set; got {self.metric!r}, "
                    "valid: 'validation_error' (with settings validation_fraction=0.1)"
                )
        if self.metric not in ("test_error", "validation_error"):
            found.append(f"metric: unknown {self.metric!r}; valid: test_error, validation_error")
        elif self.metric == "validation_error" and not any(
            {**self.settings, **v}.get("validation_fraction") for v in self.variants
        ):
            found.append("metric: validation_error needs a validation split: set validation_fraction (0.1: 45k/5k)")
        for claim in self.claims:
            found += claim.problems(map(variant_label, self.variants))
        labels = {variant_label(v) for v in self.variants}
        if unknown := [label for label in self.paper if label not in labels]:  # a typo would drop the paper column
            found.append(f"paper: no such variant {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(labels))}")
        for metric, by_variant in self.paper_more.items():
            if metric not in MORE_TESTS:
                found.append(f"paper_more.{metric}: not a final test; valid: {', '.join(MORE_TESTS)}")
            found += [f"paper_more.{metric}.{label}: no such variant" for label in by_variant if label not in labels]
        if len(set(map(variant_label, self.variants))) != len(self.variants):
            found.append("variants: two variants have the same label (duplicate grid points)")
        for where, values in [("settings", self.settings)] + [
            (f"variants[{i}]", v) for i, v in enumerate(self.variants)
        ]:
            for key in set(values) - VARIANT_KEYS:
                found.append(f"{where}.{key}: unknown key; valid: {', '.join(sorted(VARIANT_KEYS))}")
        if profile not in PROFILES:
            return found
        for index, variant in enumerate(self.variants):
            if set(variant) - VARIANT_KEYS or set(self.settings) - VARIANT_KEYS:
                continue  # already reported
            try:
                config = self._config(variant, PROFILES[profile], seed=0, data_dir=data_dir)
            except ValueError as error:
                found.append(f"variants[{index}]: {error}")
                continue
            found += [
                f"variants[{index}] ({variant_label(variant)}): {p}"
                for p in config.problems()
                if not p.startswith("data_dir")
            ]
        if not data_dir and not PROFILES[profile].synthetic_without_data:
            found.append(f"data_dir: the {profile!r} profile trains on real {self.dataset}; pass --data-dir")
        return sorted(set(found), key=found.index)

    def validate(self, profile: str = "smoke", data_dir: str | None = None) -> Study:
        """Return self, or raise one ValueError listing every problem."""
        if found := self.problems(profile, data_dir):
            raise ValueError(f"invalid study {self.name!r}:\n  " + "\n  ".join(found))
        return self

    def trials(self, profile: str = "smoke", data_dir: str | None = None) -> list[Trial]:
        """The trial grid: every variant x seed, each as a complete `TrainConfig`."""
        chosen = PROFILES[profile]
        return [
            Trial(variant_label(variant), seed, self._config(variant, chosen, seed, data_dir))
            for variant in self.variants
            for seed in self.seeds_of(variant, chosen)
        ]

    def seeds_needed(self, cap: int, outcomes: Sequence[TrialOutcome] = ()) -> dict[str, SeedNeed]:
        """Per variant, the seeds its claims need for 80 % power at the familywise rate (`study/power.py`),
        at most `cap`; sigma from `outcomes` where they have enough seeds, else the priors."""
        return seed_needs(self.claims, self.paper, self.dataset, cap, outcomes)

    def seeds_of(self, variant: Mapping[str, Any], profile: Profile) -> tuple[int, ...]:
        """The variant's seeds on `profile`: as declared, topped up to what its claims need on a profile that
        sizes by power, cut to the profile's `max_seeds`."""
        declared = tuple(variant.get("seeds", self.seeds))
        wanted = 0
        if profile.power_seeds and (need := self.seeds_needed(profile.power_seeds).get(variant_label(variant))):
            wanted = need.seeds
        unused = (s for s in itertools.count() if s not in declared)  # the lowest seeds not declared
        extra = tuple(itertools.islice(unused, max(0, wanted - len(declared))))
        return (declared + extra)[: profile.max_seeds]

    def _config(self, variant: Mapping[str, Any], profile: Profile, seed: int, data_dir: str | None) -> TrainConfig:
        """The complete config of one variant: the paper's recipe for its model, shortened to the
        profile, then the study's settings and the variant's own values on top."""
        values = {k: v for k, v in {**self.settings, **variant}.items() if k != "seeds"}
        recipe_values = {k: values.pop(k) for k in list(values) if k in RECIPE_KEYS}
        recipe = replace(profile.apply(paper_recipe(values.get("model", ""), values.get("depth"))), **recipe_values)
        values.setdefault("eval_every", profile.eval_every)
        dataset = self.dataset if data_dir or not profile.synthetic_without_data else "synthetic"
        return TrainConfig(recipe=recipe, dataset=dataset, data_dir=data_dir, seed=seed, **values)


def _net(values: Mapping[str, Any]) -> ModelSpec | None:
    """The net a variant's values name, or None when they name no net reslab registers (problems() says so)."""
    try:
        net = ModelSpec.of(values)
        net.info  # noqa: B018  (an unknown name raises)
    except (ValueError, TypeError):
        return None
    return net
