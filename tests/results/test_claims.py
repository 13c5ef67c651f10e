"""Verdicts on the paper's claims, from hand-made trial outcomes: holds, fails, inconclusive, single seed,
not tested, a diverged trial left out, a bounded gap, "similar"; and the claims the study files declare."""

from __future__ import annotations

import importlib.util
import math

import pytest

from conftest import REPO
from reslab.results.claims import judge, untestable_reason, verdict_table, verdicts_markdown, welch_interval
from reslab.results.summary import TrialOutcome, paper_table, summarize
from reslab.study import Claim, Study, falls_with, grid

STUDIES = REPO / "studies"
DEGRADATION = Claim(
    "plain34-worse", "plain-34 trains worse", "Fig. 4", "train_error", lower="plain18", higher="plain34"
)


def outcomes(label: str, errors: list[float], status: str = "finished", metric: str = "train_error") -> list:
    """One finished trial per value (errors in percent, stored as fractions as trials report them)."""
    return [
        TrialOutcome(
            label, seed, 100, **{"train_error": math.nan, "test_error": math.nan, metric: e / 100}, status=status
        )
        for seed, e in enumerate(errors)
    ]


def test_a_clear_effect_over_seeds_holds_with_its_welch_interval() -> None:
    verdict = judge(DEGRADATION, outcomes("plain18", [10.0, 10.5, 11.0]) + outcomes("plain34", [14.0, 14.5, 15.0]))
    assert verdict.verdict == "holds" and verdict.effect == pytest.approx(4.0)
    assert (verdict.n_lower, verdict.n_higher) == (3, 3) and 0 < verdict.low < 4.0 < verdict.high


def test_an_imagenet_claim_is_judged_on_the_ten_crop_test_of_the_paper_tables() -> None:
    """Table 3's claims read the 10-crop error; the centre-crop curve's last point may disagree."""
    claim = Claim("b-beats-a", "B beats A", "Table 3", "test_error_10crop", lower="resnet34-B", higher="resnet34-A")
    trials = outcomes("resnet34-A", [25.0, 25.2, 25.1], metric="test_error_10crop") + outcomes(
        "resnet34-B", [24.4, 24.5, 24.6], metric="test_error_10crop"
    )
    verdict = judge(claim, trials)
    assert verdict.verdict == "holds" and verdict.effect == pytest.approx(0.6)


def test_the_interval_is_welchs() -> None:
    from scipy import stats

    lower, higher = [10.0, 10.5, 11.0, 12.0], [14.0, 13.1, 15.0]
    expected = stats.ttest_ind(higher, lower, equal_var=False).confidence_interval(0.95)
    assert welch_interval(lower, higher) == pytest.approx((expected.low, expected.high))


def test_the_reverse_effect_fails_and_an_overlap_is_inconclusive() -> None:
    reverse = outcomes("plain18", [14.0, 14.5, 15.0]) + outcomes("plain34", [10.0, 10.5, 11.0])
    assert judge(DEGRADATION, reverse).verdict == "fails"
    overlap = outcomes("plain18", [10.0, 14.0, 12.0]) + outcomes("plain34", [11.0, 15.0, 12.5])
    verdict = judge(DEGRADATION, overlap)
    assert verdict.verdict == "inconclusive" and verdict.effect > 0 and verdict.low < 0 < verdict.high


def test_one_seed_on_a_side_gives_a_single_seed_verdict_without_an_interval() -> None:
    holds = judge(DEGRADATION, outcomes("plain18", [10.0]) + outcomes("plain34", [14.0, 15.0]))
    assert holds.verdict == "holds (1 seed)" and math.isnan(holds.low) and holds.n_lower == 1
    fails = judge(DEGRADATION, outcomes("plain18", [14.0]) + outcomes("plain34", [10.0]))
    assert fails.verdict == "fails (1 seed)" and fails.effect == pytest.approx(-4.0)


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


def test_verdicts_are_a_table_and_a_markdown_section() -> None:
    verdicts = [
        judge(DEGRADATION, outcomes("plain18", [10.0, 10.5]) + outcomes("plain34", [14.0, 14.5])),
        judge(DEGRADATION, [], "the smoke profile is too short to test the paper's claims"),
    ]
    table = verdict_table(verdicts)
    assert list(table["verdict"]) == ["holds", "not tested"] and list(table["n_lower"]) == [2, 0]
    markdown = verdicts_markdown(verdicts)
    assert "| plain-34 trains worse | Fig. 4 | holds | +4.00 | [" in markdown
    assert "not tested (the smoke profile is too short" in markdown and "Welch" in markdown


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
