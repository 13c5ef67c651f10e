"""Verdicts on the paper's claims, from hand-made trial outcomes: every evidence level (full schedule and data
with 2+ seeds a verdict, anything less indicative, smoke and synthetic not tested), Holm's step-down over a
family, a diverged trial left out, a bounded gap, "similar", absolute and curve claims; and the claims the
study files declare."""

from __future__ import annotations

import importlib.util
import math

import pytest

from conftest import REPO
from reslab.results.stats import welch
from reslab.results.summary import TrialOutcome, paper_table, summarize
from reslab.results.verdicts import judge, judge_claims, untestable_reason, verdict_table, verdicts_markdown
from reslab.study import Claim, Study, falls_with, grid

STUDIES = REPO / "studies"
DEGRADATION = Claim(
    "plain34-worse", "plain-34 trains worse", "Fig. 4", "train_error", lower="plain18", higher="plain34"
)
FULL = {"schedule": 1.0, "train_images": 50_000, "dataset": "cifar10"}  # the paper's schedule on all of CIFAR-10


def outcomes(label: str, errors: list[float], status: str = "finished", metric: str = "train_error",
             **evidence: object) -> list:  # fmt: skip
    """One finished trial per value (errors in percent, stored as fractions as trials report them), trained on
    the full schedule and data unless `evidence` says otherwise."""
    return [
        TrialOutcome(
            label,
            seed,
            100,
            **{"train_error": math.nan, "test_error": math.nan, metric: e / 100},
            status=status,
            **{**FULL, **evidence},
        )
        for seed, e in enumerate(errors)
    ]


def test_a_clear_effect_over_seeds_holds_with_its_welch_interval() -> None:
    verdict = judge(DEGRADATION, outcomes("plain18", [10.0, 10.5, 11.0]) + outcomes("plain34", [14.0, 14.5, 15.0]))
    assert verdict.verdict == "holds" and verdict.evidence == "verdict" and verdict.effect == pytest.approx(4.0)
    assert (verdict.n_lower, verdict.n_higher) == (3, 3) and 0 < verdict.low < 4.0 < verdict.high
    assert verdict.alpha == pytest.approx(0.05) and verdict.p < 0.05  # a family of one: Holm tests it at 5 %


def test_an_imagenet_claim_is_judged_on_the_ten_crop_test_of_the_paper_tables() -> None:
    """Table 3's claims read the 10-crop error; the centre-crop curve's last point may disagree."""
    claim = Claim("b-beats-a", "B beats A", "Table 3", "test_error_10crop", lower="resnet34-B", higher="resnet34-A")
    imagenet = {"train_images": 1_281_167, "dataset": "imagenet", "metric": "test_error_10crop"}
    trials = outcomes("resnet34-A", [25.0, 25.2, 25.1], **imagenet) + outcomes("resnet34-B", [24.4, 24.5, 24.6],
                                                                                **imagenet)  # fmt: skip
    verdict = judge(claim, trials)
    assert verdict.verdict == "holds" and verdict.effect == pytest.approx(0.6)


def test_the_interval_is_welchs() -> None:
    from scipy import stats

    lower, higher = [10.0, 10.5, 11.0, 12.0], [14.0, 13.1, 15.0]
    for level in (0.95, 0.99):
        expected = stats.ttest_ind(higher, lower, equal_var=False).confidence_interval(level)
        assert welch(lower, higher).interval(1 - level) == pytest.approx((expected.low, expected.high))


def test_the_reverse_effect_fails_and_an_overlap_is_inconclusive() -> None:
    reverse = outcomes("plain18", [14.0, 14.5, 15.0]) + outcomes("plain34", [10.0, 10.5, 11.0])
    assert judge(DEGRADATION, reverse).verdict == "fails"
    overlap = outcomes("plain18", [10.0, 14.0, 12.0]) + outcomes("plain34", [11.0, 15.0, 12.5])
    verdict = judge(DEGRADATION, overlap)
    assert verdict.verdict == "inconclusive" and verdict.effect > 0 and verdict.low < 0 < verdict.high


def test_one_seed_on_a_side_is_only_indicative_with_its_direction() -> None:
    leans = judge(DEGRADATION, outcomes("plain18", [10.0]) + outcomes("plain34", [14.0, 15.0]))
    assert leans.verdict == "indicative" and leans.leans == "holds" and math.isnan(leans.low)
    assert leans.n_lower == 1 and "1 finished seed on an arm (a verdict needs 2)" in leans.reason
    against = judge(DEGRADATION, outcomes("plain18", [14.0]) + outcomes("plain34", [10.0]))
    assert against.verdict == "indicative" and against.leans == "fails" and against.effect == pytest.approx(-4.0)


def test_a_short_schedule_or_a_training_subset_is_indicative_with_its_interval_and_reason() -> None:
    clear = {"plain18": [10.0, 10.5, 11.0], "plain34": [14.0, 14.5, 15.0]}
    quick = judge(DEGRADATION, [o for k, v in clear.items() for o in outcomes(k, v, schedule=2000 / 64000)])
    assert quick.verdict == "indicative" and quick.leans == "holds" and quick.low > 0
    assert quick.reason == "trained 3.12 % of the paper's schedule" and math.isnan(quick.alpha)
    subset = judge(DEGRADATION, [o for k, v in clear.items() for o in outcomes(k, v, train_images=4660)])
    assert subset.verdict == "indicative" and subset.reason == "4,660 of 50,000 training images"
    unknown = judge(DEGRADATION, [o for k, v in clear.items() for o in outcomes(k, v, schedule=math.nan)])
    assert unknown.verdict == "indicative" and "an unknown part of the paper's schedule" in unknown.reason


def test_holm_decides_a_family_at_a_familywise_five_percent() -> None:
    """A claim whose interval excludes 0 at 5 % but not at 5 %/3 holds alone; in a family with two clear
    claims it is tested last, at 5 % / 1, and still holds (Holm's step-down, not Bonferroni); among three of
    its like, the first is tested at 5 % / 3 and the procedure stops; adjusted intervals are wider."""
    rivals = [Claim(f"c{i}", "c", "t", "train_error", lower=f"l{i}", higher=f"h{i}") for i in range(2)]
    clear = [o for i in range(2) for o in outcomes(f"l{i}", [10.0, 10.1, 9.9]) + outcomes(f"h{i}", [20, 20.1, 19.9])]
    borderline = outcomes("plain18", [10.0, 11.0, 12.0]) + outcomes("plain34", [12.5, 13.5, 14.5])
    alone = judge(DEGRADATION, borderline)
    assert alone.verdict == "holds" and 0.05 / 3 < alone.p < 0.05
    family = judge_claims([DEGRADATION, *rivals], borderline + clear)
    assert [v.verdict for v in family] == ["holds", "holds", "holds"]
    assert family[0].alpha == pytest.approx(0.05) and family[1].alpha < 0.05  # last, after both rivals
    stopped = judge_claims([DEGRADATION, *rivals], borderline + clear, familywise=0.02)
    assert stopped[0].verdict == "inconclusive"
    three = judge_claims([DEGRADATION] * 3, borderline)  # three alike: the smallest tested at 5 % / 3, and stop
    assert [v.verdict for v in three] == ["inconclusive"] * 3 and three[0].alpha == pytest.approx(0.05 / 3)
    assert three[0].adjusted_low < three[0].low and three[0].high < three[0].adjusted_high


def test_a_diverged_trial_is_left_out() -> None:
    diverged = outcomes("plain34", [90.0], status="diverged")  # would flip nothing but must not count
    verdict = judge(DEGRADATION, outcomes("plain18", [10.0, 11.0]) + outcomes("plain34", [14.0, 15.0]) + diverged)
    assert verdict.n_higher == 2 and verdict.effect == pytest.approx(4.0)
    only_diverged = judge(DEGRADATION, outcomes("plain18", [10.0]) + diverged)
    assert only_diverged.verdict == "not tested" and "no finished trial of plain34" in only_diverged.reason


def test_a_short_profile_or_synthetic_data_is_not_tested() -> None:
    clear = outcomes("plain18", [10.0, 10.5]) + outcomes("plain34", [14.0, 14.5])
    assert untestable_reason("quick", "cifar10") == "" and untestable_reason("paper", "imagenet") == ""
    for profile, dataset in (("smoke", "cifar10"), ("quick", "synthetic")):
        verdict = judge(DEGRADATION, clear, untestable_reason(profile, dataset))
        assert verdict.verdict == "not tested" and math.isnan(verdict.effect) and verdict.reason


def test_a_gap_the_paper_bounds_must_be_under_the_bound() -> None:
    slightly = Claim("b-beats-a", "B slightly better", "Table 3", "test_error", lower="B", higher="A", within=1.0)
    small = outcomes("B", [24.5, 24.4, 24.6], metric="test_error") + outcomes(
        "A", [25.0, 24.9, 25.1], metric="test_error"
    )
    assert judge(slightly, small).verdict == "holds"
    large = outcomes("B", [22.0, 22.1, 21.9], metric="test_error") + outcomes(
        "A", [25.0, 24.9, 25.1], metric="test_error"
    )
    assert judge(slightly, large).verdict == "fails"  # B is better, but by 3 points, not "slightly"


def test_similar_holds_inside_the_margin_and_fails_outside() -> None:
    similar = Claim("similar", "similar", "Table 6", "train_error", lower="a", higher="b", within=1.0, kind="similar")
    assert judge(similar, outcomes("a", [0.2, 0.3, 0.25]) + outcomes("b", [0.4, 0.5, 0.45])).verdict == "holds"
    assert judge(similar, outcomes("a", [0.2, 0.3, 0.25]) + outcomes("b", [5.4, 5.5, 5.45])).verdict == "fails"


def test_an_absolute_claim_compares_one_variant_with_a_value() -> None:
    above = Claim("plain110-fails-to-train", "plain-110 above 60 %", "Sec. 4.2", "train_error", kind="above",
                  higher="plain110", value=60.0)  # fmt: skip
    assert not above.problems(["plain110"])
    verdict = judge(above, outcomes("plain110", [80.0, 85.0, 90.0]))
    assert verdict.verdict == "holds" and verdict.effect == pytest.approx(25.0) and verdict.n_higher == 3
    assert judge(above, outcomes("plain110", [20.0, 21.0, 22.0])).verdict == "fails"
    below = Claim("r110-trains", "ResNet-110 below 1 %", "Fig. 6", "train_error", kind="below", lower="r110", value=1.0)
    assert judge(below, outcomes("r110", [0.2, 0.3, 0.25])).verdict == "holds"
    assert judge(below, outcomes("r110", [0.2, 0.3, 0.25])).effect == pytest.approx(0.75)
    bad = Claim("x", "x", "t", "train_error", kind="above", lower="plain110", value=None)
    assert "needs `value` and one variant, as `higher=`" in " ".join(bad.problems(["plain110"]))


def curve(label: str, seeds: list[list[float]], steps: list[int]) -> list:
    """Finished trials with a training-error curve each (percent), at `steps`, the last one final."""
    return [
        TrialOutcome(label, seed, steps[-1], errors[-1] / 100, math.nan, "finished", **FULL,
                     curves={"train_error": tuple((s, e / 100) for s, e in zip(steps, errors, strict=True))})
        for seed, errors in enumerate(seeds)
    ]  # fmt: skip


def test_a_curve_claim_needs_every_evaluation_from_its_fraction_on() -> None:
    """ "Throughout training": an intersection-union test over the evaluations after from_fraction; one
    evaluation where the gap vanishes keeps it from holding, one clearly reversed makes it fail."""
    claim = Claim("plain34-worse-throughout", "t", "Fig. 4", "train_error", lower="a", higher="b", from_fraction=0.5)
    steps = [10, 20, 30, 40]
    lower = curve("a", [[90, 50, 30, 20], [91, 51, 31, 21], [89, 49, 29, 19]], steps)
    higher = curve("b", [[80, 60, 40, 30], [81, 61, 41, 31], [79, 59, 39, 29]], steps)  # below a at step 10 only
    verdict = judge(claim, lower + higher)
    assert verdict.verdict == "holds" and verdict.effect == pytest.approx(10.0) and "3 evaluations" in verdict.reason
    close = curve("b", [[80, 60, 40, 20.5], [81, 61, 41, 21.5], [79, 59, 39, 18.5]], steps)  # no gap at the end
    assert judge(claim, lower + close).verdict == "inconclusive"
    early = Claim("from-start", "t", "Fig. 4", "train_error", lower="a", higher="b", from_fraction=0.0)
    reversed_early = judge(early, lower + higher)
    assert reversed_early.verdict == "fails" and "reversed at iteration 10" in reversed_early.reason


def test_verdicts_are_a_table_and_a_markdown_section() -> None:
    verdicts = [
        judge(DEGRADATION, outcomes("plain18", [10.0, 10.5]) + outcomes("plain34", [14.0, 14.5])),
        judge(DEGRADATION, [], "the smoke profile is too short to test the paper's claims"),
    ]
    table = verdict_table(verdicts)
    assert list(table["verdict"]) == ["holds", "not tested"] and list(table["n_lower"]) == [2, 0]
    assert list(table["evidence"]) == ["verdict", "none"] and table["adj_low"].notna().tolist() == [True, False]
    markdown = verdicts_markdown(verdicts)
    assert "| plain-34 trains worse | Fig. 4 | holds | +4.00 | [" in markdown
    assert "not tested (the smoke profile is too short" in markdown and "Holm" in markdown
    assert "1 of 2 claims have the evidence for a verdict" in markdown


def test_a_trend_is_checked_step_by_step() -> None:
    claims = falls_with("deeper", "Deeper is better", "Table 6", "test_error", ["r20", "r32", "r44"])
    assert [(c.higher, c.lower) for c in claims] == [("r20", "r32"), ("r32", "r44")]


def test_a_claim_naming_a_missing_variant_or_metric_is_refused_before_anything_runs() -> None:
    bad = Claim("x", "x", "Table 2", "top5", lower="resnet34", higher="plain99")
    study = Study("bad", "t", "cifar10", grid(model=["cifar_resnet20"]), claims=(bad,))
    found = " ".join(study.problems("smoke"))
    assert "claim x: unknown metric 'top5'" in found and "claim x: no variant 'plain99'" in found


def load(name: str, attribute: str) -> Study:
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attribute)


def test_every_study_file_declares_valid_claims() -> None:
    studies = [load(n, a) for n, a in [("plain_vs_residual", "CIFAR"), ("plain_vs_residual", "IMAGENET"),
               ("shortcut_ablation", "IMAGENET"), ("shortcut_ablation", "CIFAR"), ("imagenet_depth", "STUDY"),
               ("cifar_depth", "STUDY"), ("layer_responses", "STUDY")]]  # fmt: skip
    for study in studies:
        assert study.claims and not [p for p in study.problems("quick", "/data") if p.startswith("claim")]
    assert {c.metric for s in studies for c in s.claims} >= {"train_error_late", "test_error", "response_std"}


def test_table_2_compares_plain_nets_with_option_a_resnets_of_the_same_size() -> None:
    from reslab.models import complexity, create_model

    study = load("plain_vs_residual", "IMAGENET")
    shortcuts = {t.label: t.config.shortcut for t in study.trials("smoke")}
    assert shortcuts == {"plain18": None, "plain34": None, "resnet18-A": "A", "resnet34-A": "A"}
    size = {s: complexity(create_model(m, shortcut=s), (3, 224, 224)).parameters for m, s in
            [("plain34", None), ("resnet34", "A")]}  # fmt: skip
    assert size[None] == size["A"]  # option A adds no parameters: the comparison is fair, as in the paper


def test_a_synthetic_run_has_no_paper_column() -> None:
    runs = outcomes("cifar_resnet20", [30.0], metric="test_error")
    with_paper = paper_table(summarize(runs, {"cifar_resnet20": 8.75}, ["cifar_resnet20"]))
    assert "paper %" in with_paper.columns and "difference" in with_paper.columns
    synthetic = paper_table(summarize(runs, {}, ["cifar_resnet20"]))
    assert "paper %" not in synthetic.columns and "difference" not in synthetic.columns
