"""Study definitions, validation before anything runs, the dry-run plan and the summary table."""

from __future__ import annotations

import math
import runpy
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO
from reslab.launch.resources import gpu_fraction, trial_resources
from reslab.results.summary import TrialOutcome, summarize, to_markdown
from reslab.study import PROFILES, Claim, Study, grid, variant_label
from reslab.study.plan import format_plan, plan

STUDY_FILES = [
    "plain_vs_residual",
    "shortcut_ablation",
    "cifar_depth",
    "imagenet_depth",
    "layer_responses",
    "lr_search",
]


def load_studies(name: str) -> list[Study]:
    module = runpy.run_path(str(REPO / "studies" / f"{name}.py"), run_name="reslab_test")
    return [v for v in module.values() if isinstance(v, Study)]


@pytest.mark.parametrize("name", STUDY_FILES)
def test_every_shipped_study_is_valid_in_every_profile(name: str) -> None:
    for study in load_studies(name):
        for profile in PROFILES:
            assert study.problems(profile, data_dir="/data") == [], (study.name, profile)
        assert study.problems("smoke") == []  # smoke needs no data
        assert set(study.paper) <= {variant_label(v) for v in study.variants}  # paper numbers match variants


def test_trials_cross_variants_with_seeds_and_apply_the_profile() -> None:
    study = Study("s", "t", "cifar10", grid(model=["cifar_resnet20", "cifar_resnet110"]), seeds=(0, 1, 2))
    quick = study.trials("quick", data_dir="/data")
    assert [(t.label, t.seed) for t in quick][:4] == [
        ("cifar_resnet20", 0),
        ("cifar_resnet20", 1),
        ("cifar_resnet20", 2),
        ("cifar_resnet110", 0),
    ]
    assert quick[0].config.recipe.iterations == 2000 and quick[0].config.recipe.milestones == (1000, 1500)
    assert quick[3].config.recipe.warmup_lr == 0.01  # the paper's 110-layer warm-up comes with the model
    smoke = study.trials("smoke")
    assert len(smoke) == 2 and smoke[0].config.dataset == "synthetic"  # smoke: first seed, synthetic data
    paper = study.trials("paper", data_dir="/data")
    assert paper[0].config.recipe.iterations == 64_000 and paper[0].config.dataset == "cifar10"


def test_settings_and_variants_override_the_recipe() -> None:
    study = Study("s", "t", "cifar10", grid(lr=[0.05, 0.2]), settings={"model": "cifar_resnet20", "weight_decay": 5e-4})
    configs = [t.config for t in study.trials("smoke")]
    assert [c.recipe.lr for c in configs] == [0.05, 0.2]
    assert all(c.recipe.weight_decay == 5e-4 for c in configs)
    assert [t.label for t in study.trials("smoke")] == ["lr=0.05", "lr=0.2"]


def test_validation_reports_every_problem_by_path_before_running() -> None:
    bad = Study(
        "bad",
        "t",
        "cifar10",
        variants=(
            {"model": "cifar_plain20", "shortcut": "A"},
            {"model": "resnet99"},
            {"model": "cifar_resnet", "depth": 30},
            {"model": "cifar_resnet20", "learning_rate": 0.1},
        ),
        seeds=(),
    )
    with pytest.raises(ValueError) as error:
        bad.validate("quick")
    message = str(error.value)
    for needle in (
        "seeds: need at least one",
        "variants[0] (cifar_plain20-A): shortcut: 'A' is not valid for cifar_plain20; valid: none (plain net)",
        "variants[1]: unknown model 'resnet99'; valid models:",
        "variants[2] (cifar_resnet-depth=30): depth: CIFAR depth must be 6n+2",
        "variants[3].learning_rate: unknown key; valid: batch_size,",
        "data_dir: the 'quick' profile trains on real cifar10; pass --data-dir",
    ):
        assert needle in message
    assert "empty grid" in "\n".join(Study("e", "t", "cifar10", ()).problems())
    escaping = Study("../escape", "t", "cifar10", grid(model=["cifar_resnet20"]), seeds=(2**32,)).problems()
    assert escaping[0].startswith("study name '../escape' is not allowed: use letters, digits")
    assert "seeds: need at least one integer seed from 0 to 4294967295, got (4294967296,)" in escaping
    assert "profile: unknown 'huge'" in Study("e", "t", "cifar10", grid(model=["cifar_resnet20"])).problems("huge")[0]


def test_resources_pack_small_cifar_nets_onto_a_gpu_and_fall_back_to_cpus() -> None:
    configs = {
        t.label: t.config
        for t in Study(
            "r", "t", "cifar10", grid(model=["cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "cifar_resnet1202"])
        ).trials("paper", "/data")
    }
    assert [gpu_fraction(c) for c in configs.values()] == [0.25, 0.25, 0.5, 1.0]
    # sized by what a step computes, not by depth: ResNet-20 at 8x the batch computes more than ResNet-110
    wide_batch = replace(configs["cifar_resnet20"], recipe=replace(configs["cifar_resnet20"].recipe, batch_size=1024))
    assert gpu_fraction(wide_batch) == 1.0
    assert trial_resources(configs["cifar_resnet20"], cluster_gpus=2, gpus_per_trial=None) == {"CPU": 1, "GPU": 0.25}
    assert trial_resources(configs["cifar_resnet20"], cluster_gpus=0, gpus_per_trial=None) == {"CPU": 1}
    assert trial_resources(configs["cifar_resnet20"], cluster_gpus=0, gpus_per_trial=0.5) == {"CPU": 1, "GPU": 0.5}


def test_dry_run_plan_counts_compute_and_estimates_time() -> None:
    study = Study("d", "t", "cifar10", grid(model=["cifar_resnet20", "cifar_resnet56"]))
    planned = plan(study.trials("smoke"), measure=True)
    assert [p.label for p in planned] == ["cifar_resnet20", "cifar_resnet56"]
    images = 24 * 32
    assert planned[0].flops == pytest.approx(3 * 40_551_040 * images, rel=0.01)
    assert planned[1].flops > 3 * planned[0].flops and all(p.seconds > 0 for p in planned)
    # two evaluations (iterations 12 and 24) of the 500 synthetic test images, forward only
    assert planned[0].eval_flops == pytest.approx(40_551_040 * 2 * 500, rel=0.01)
    text = format_plan(planned, concurrency=2, device="cpu")
    assert "2 trials" in text and "cifar_resnet56" in text and "PFLOP evaluation (" in text and "on cpu: about" in text


def test_the_dry_run_costs_gpu_hours_on_named_gpus_without_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --measure nothing trains (the probe is not called); each trial's time on a GPU is its images
    over a measured rate where one exists (ResNet-20 at batch 128 on an H200: 54,493 img/s), else peak dense
    bf16 x the family's utilisation over 6 x multiply-adds; the totals name each GPU, the measured share and
    the price."""
    import reslab.study.plan
    from reslab.study.cost import GPUS, UTILISATION

    monkeypatch.setattr(reslab.study.plan, "measure_images_per_second", lambda *a: pytest.fail("it trained"))
    study = runpy.run_path(str(REPO / "studies" / "cifar_depth.py"))["STUDY"]
    planned = {p.label: p for p in plan(study.trials("paper", "/data"))}  # seed 0 of each variant, last wins
    r20 = planned["cifar_resnet20"]
    assert math.isnan(r20.seconds) and r20.images == 64_000 * 128
    seconds, measured = r20.gpu_seconds("H200")
    assert measured and seconds == pytest.approx((r20.images + r20.evaluated / 3) / 54_493)
    seconds, measured = r20.gpu_seconds("A100")
    rate = GPUS["A100"].bf16_tflops * 1e12 * UTILISATION["cifar"] / (6 * r20.multiply_adds)
    assert not measured and seconds == pytest.approx((r20.images + r20.evaluated / 3) / rate)
    text = format_plan(list(planned.values()), price_per_gpu_hour=2.0)
    assert "GPU-hours (one trial per GPU at a time): A10G " in text and "; H100 " in text and "$" in text
    assert "of 6 trials measured" in text and "on cpu" not in text and " here" not in text.splitlines()[0]


def test_the_dry_run_counts_evaluation_centre_crop_curves_and_one_ten_crop_test() -> None:
    """ImageNet's paper recipe evaluates the 50k validation images (centre crop) every 1,000 of 600k
    iterations and 10 crops of each once at the end: 6.6 % of the training compute on top (10 crops at every
    evaluation, as before, was 65 %)."""
    from reslab.study.plan import eval_images, evaluations
    from reslab.training import TrainConfig
    from reslab.training.recipe import Recipe, imagenet_recipe

    config = TrainConfig(
        "resnet34", recipe=imagenet_recipe(), dataset="imagenet", data_dir="x", ten_crop=True, eval_every=1000
    )
    assert evaluations(config) == 600 and eval_images(config) == 600 * 50_000 + 10 * 50_000
    assert eval_images(config) / (3 * 600_000 * 256) == pytest.approx(0.0662, abs=0.0001)
    assert evaluations(TrainConfig("cifar_resnet20", recipe=Recipe(iterations=25), eval_every=10)) == 3  # 10, 20, 25


def test_the_summary_sets_the_paper_beside_the_ten_crop_test_where_one_ran() -> None:
    """The paper's ImageNet tables are 10-crop: where the trials ran the 10-crop test, the summary shows it
    beside the centre-crop error and the difference is taken from it; CIFAR tables have no such column."""
    outcomes = [
        TrialOutcome("resnet34", 0, 100, 0.20, 0.30, "finished", test_error_10crop=0.28),
        TrialOutcome("resnet34", 1, 100, 0.22, 0.32, "finished", test_error_10crop=0.26),
    ]
    table = summarize(outcomes, {"resnet34": 25.03}, order=["resnet34"])
    assert table.loc[0, "test_error_10crop_mean"] == pytest.approx(27.0)
    assert table.loc[0, "difference"] == pytest.approx(27.0 - 25.03)  # not 31.0 - 25.03 (centre crop)
    assert "| 10-crop test error % |" in to_markdown(table, "t") and "27.00 ± 1.41 (2)" in to_markdown(table, "t")
    scaled = [
        TrialOutcome("resnet34", 0, 100, 0.2, 0.3, "finished", test_error_10crop=0.28, test_error_multiscale=0.23)
    ]
    table4 = summarize(scaled, {"resnet34": 25.03}, ["resnet34"], {"test_error_multiscale": {"resnet34": 21.84}})
    assert table4.loc[0, "test_error_multiscale_mean"] == pytest.approx(23.0)
    assert "| multi-scale % | paper multi-scale % |" in to_markdown(table4, "t")
    assert "| 23.00 (1) | 21.84 |" in to_markdown(table4, "t")
    assert "top-5" not in to_markdown(table4, "t")  # no top-5 measured: no column
    typo = Study("s", "t", "imagenet", grid(model=["resnet34"]), paper_more={"test_error_top5": {"resnet43": 7.4}})
    assert typo.problems("smoke") == [
        "paper_more.test_error_top5: not a final test; valid: test_error_10crop_top5, test_error_multiscale, "
        "test_error_multiscale_top5",
        "paper_more.test_error_top5.resnet43: no such variant",
    ]
    paper_typo = Study("s", "t", "imagenet", grid(model=["resnet34", "resnet18"]), paper={"resnet43": 25.03})
    assert paper_typo.problems("smoke") == ["paper: no such variant 'resnet43'; valid: resnet18, resnet34"]
    assert "multi-scale" not in to_markdown(table, "t")  # not run: no columns
    cifar = summarize([TrialOutcome("a", 0, 100, 0.1, 0.2, "finished")], {"a": 8.75}, order=["a"])
    assert "10-crop" not in to_markdown(cifar, "t") and cifar.loc[0, "difference"] == pytest.approx(20 - 8.75)


def test_the_paper_profile_sizes_each_variants_seeds_by_power_on_its_claims_metric() -> None:
    """Table 6 decides 44 vs 56 layers by 0.20 points and 56 vs 110 by 0.36: with sigma 0.16 (Table 6) and
    5 % split over the study's claims, 80 % power needs 18 and 7 seeds per arm; ResNet-20 vs -32 (1.24 points)
    3. A claim on training error is sized on its own margin, not the test-error gap; the cap cuts the
    1202 claim and says so; the smoke and quick profiles keep the declared seeds; the dry run names the claim
    behind each count. The summary gives the best of several seeds, as the paper does for ResNet-110."""
    from reslab.study.plan import seeds_note

    study = runpy.run_path(str(REPO / "studies" / "cifar_depth.py"))["STUDY"]
    needs = study.seeds_needed(20)
    assert needs["cifar_resnet44"].seeds == 18 and needs["cifar_resnet44"].margin == pytest.approx(0.20)
    assert needs["cifar_resnet20"].seeds == 3 and needs["cifar_resnet20"].power >= 0.8
    similar = needs["cifar_resnet1202"]  # sized by its 0.2-point bound on training error, capped at 20
    assert similar.claim == "resnet1202-still-trains" and similar.seeds == 20 and similar.capped
    per_variant = {label: [t.seed for t in study.trials("paper", "x") if t.label == label] for label in needs}
    assert per_variant["cifar_resnet44"] == list(range(18)) and per_variant["cifar_resnet1202"] == list(range(20))
    assert [t.seed for t in study.trials("quick", "x") if t.label == "cifar_resnet44"] == [0]
    note = seeds_note(study, "paper")
    assert "cifar_resnet44: 18 seeds for cifar-deeper-is-better-cifar_resnet44-cifar_resnet56 (margin 0.20" in note
    assert "capped: 75 % power" in note and not seeds_note(study, "quick")
    outcomes = [TrialOutcome("r110", seed, 100, 0.1, error, "finished") for seed, error in enumerate([0.07, 0.0643])]
    table = summarize(outcomes, {"r110": 6.61}, order=["r110"])
    assert table.loc[0, "test_error_best"] == pytest.approx(6.43) and "| best % |" in to_markdown(table, "t")


def test_seeds_follow_the_power_calculation_and_a_studys_own_spread() -> None:
    """seeds_for_power against the textbook normal approximation n = 2 (z_a/2 + z_b)^2 (sigma / margin)^2 (the
    t correction adds a seed or two); a study's own seeds replace the prior once each arm has three."""
    from scipy import stats

    from reslab.results.stats import seeds_for_power
    from reslab.study.power import spread

    for margin, sigma, alpha in [(0.5, 0.16, 0.05), (0.3, 0.16, 0.05), (0.2, 0.16, 0.01)]:
        z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)
        normal = 2 * (z * sigma / margin) ** 2
        seeds, power = seeds_for_power(margin, sigma, alpha)
        assert normal <= seeds <= normal + 3 and power >= 0.8
    claim = Claim("c", "c", "t", "test_error", lower="a", higher="b")
    assert spread(claim, "cifar10") == (0.16, "Table 6: ResNet-110, 6.61 ± 0.16 over 5 runs")
    own = [TrialOutcome(label, seed, 100, 0.1, e / 100, "finished") for label, errors in
           (("a", [7.0, 7.2, 7.4]), ("b", [8.0, 8.2, 8.4])) for seed, e in enumerate(errors)]  # fmt: skip
    sigma, source = spread(claim, "cifar10", own)
    assert sigma == pytest.approx(0.2) and source == "this study's seeds (3, 3 per arm)"


def test_summary_averages_finished_seeds_and_keeps_diverged_out() -> None:
    outcomes = [
        TrialOutcome("a", 0, 100, 0.10, 0.20, "finished"),
        TrialOutcome("a", 1, 100, 0.20, 0.30, "finished"),
        TrialOutcome("a", 2, 40, math.nan, math.nan, "diverged", "loss became nan"),
        TrialOutcome("b", 0, 50, 0.5, 0.5, "failed", "RuntimeError: out of memory"),
    ]
    table = summarize(outcomes, paper={"a": 20.0}, order=["a", "b"]).set_index("variant")
    assert table.loc["a", "n"] == 2 and table.loc["a", "test_error_mean"] == pytest.approx(25.0)
    assert table.loc["a", "test_error_std"] == pytest.approx(math.sqrt(50))
    assert table.loc["a", "difference"] == pytest.approx(5.0) and table.loc["a", "diverged"] == 1
    assert table.loc["b", "n"] == 0 and table.loc["b", "failed"] == 1 and math.isnan(table.loc["b", "test_error_mean"])
    markdown = to_markdown(table.reset_index(), "T")
    assert "| a | 15.00 ± 7.07 (2) | 25.00 ± 7.07 (2) | 20.00 | 20.00 | +5.00 | 1 | 0 |" in markdown  # best of 2: 20.00
    assert "| best % |" in markdown


def test_search_studies_are_validated_too() -> None:
    from reslab.study import Search

    bad = Study(
        "s",
        "t",
        "cifar10",
        grid(model=["cifar_resnet20", "cifar_resnet32"]),
        search=Search(
            space={"lr": (1.0, 0.1), "dropout": (0.1, 0.5)}, samples={"smoke": 0, "huge": 3}, reduction_factor=1
        ),
    )
    message = "\n".join(bad.problems())
    for needle in (
        "search.space.lr: need 0 < low < high, got (1.0, 0.1)",
        "search.space.dropout: not a recipe field",
        "search.samples.huge: unknown profile",
        "search.samples.smoke: need at least 1 trial",
        "search.reduction_factor: must be >= 2",
        "variants: a search study has exactly one base variant, got 2",
        "metric: a search selects on a validation split, never the test set; got 'test_error'",
    ):
        assert needle in message


def test_a_search_selects_on_a_validation_split_never_on_the_test_set(tmp_path: Path) -> None:
    """The paper chose its schedule on 45k/5k: a search whose objective is the test error is refused, so is
    one that names the validation error without holding a split out; the shipped lr_search does neither, and
    its Tune objective (what Optuna and ASHA read) is the validation error."""
    from reslab.launch.tuner import search_config
    from reslab.study import Search

    space = Search(space={"lr": (0.01, 1.0)}, samples={"smoke": 2})
    no_split = Study("s", "t", "cifar10", grid(model=["cifar_resnet20"]), search=space, metric="validation_error")
    assert "metric: validation_error needs a validation split" in "\n".join(no_split.problems())
    shipped = runpy.run_path(str(REPO / "studies" / "lr_search.py"))["STUDY"]
    assert shipped.problems() == [] and shipped.metric == "validation_error"
    trials = shipped.trials("smoke")
    assert {(t.config.validation_fraction, t.config.validation_seed) for t in trials} == {(0.1, 0)}
    config = search_config(shipped, "smoke", 24, None, {}, str(tmp_path / "lr_search-smoke"))
    assert config.metric == "validation_error" and config.mode == "min"  # Tune hands both to Optuna and ASHA


def test_an_unreachable_tracking_server_fails_the_launch_before_any_trial(tmp_path) -> None:
    import subprocess
    import sys

    from helpers import free_port

    port = free_port()  # closed again: nothing listens there
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "studies" / "lr_search.py"),
            "--storage",
            str(tmp_path),
            "--tracking-uri",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []  # nothing started, nothing written


def test_a_cluster_config_says_how_many_workers_the_cluster_may_have(tmp_path: Path) -> None:
    """Cloud configs bound workers by max_workers, on-prem ones by the machines listed; no config: none."""
    import yaml

    from reslab.launch.preflight import autoscaling_gpus, autoscaling_workers, is_local_path

    cloud = tmp_path / "cloud.yaml"
    cloud.write_text(yaml.safe_dump(yaml.safe_load((REPO / "cluster" / "gpu.yaml").read_text())))
    onprem = tmp_path / "onprem.yaml"
    onprem.write_text(yaml.safe_dump(yaml.safe_load((REPO / "cluster" / "onprem.yaml").read_text())))
    assert autoscaling_workers(str(cloud)) == 8 and autoscaling_workers(str(onprem)) == 1
    assert autoscaling_workers(str(tmp_path / "none.yaml")) == 0 and autoscaling_gpus(str(tmp_path / "none.yaml")) == 0
    assert is_local_path("runs") and is_local_path("/nfs/x") and is_local_path("sqlite:////a/b.db")
    assert not is_local_path("s3://bucket/x") and not is_local_path("http://127.0.0.1:5000")


def test_the_dry_run_plans_every_search_sample_and_prints_each_variants_recipe() -> None:
    """lr_search's quick profile runs 16 samples: the plan has 16 trials, not its one base trial; the recipe
    lines give lr, weight decay, momentum, schedule, warm-up, augmentation, normalisation and evaluation, the
    search's ranges where it samples; an ImageNet config records the per-channel normalisation it uses."""
    from reslab.study.plan import planned_trials, recipe_lines
    from reslab.training import TrainConfig

    search = runpy.run_path(str(REPO / "studies" / "lr_search.py"))["STUDY"]
    assert len(planned_trials(search, "quick", "/data")) == 16 and len(search.trials("quick", "/data")) == 1
    lines = recipe_lines(search, "quick", "/data")
    assert "lr searched in [0.01, 1] (log-uniform), weight decay searched in [1e-05, 0.001]" in lines
    assert "2000 iterations, lr x0.1 at 1000, 1500; warm-up none;" in lines
    assert "per-pixel mean subtracted; evaluation every 200 iterations, centre view; 10 % of the training" in lines
    depth = runpy.run_path(str(REPO / "studies" / "cifar_depth.py"))["STUDY"]
    assert "cifar_resnet110: lr 0.1, weight decay 0.0001 (every weight), momentum 0.9, batch 128, 64000 " \
           "iterations, lr x0.1 at 32000, 48000; warm-up lr 0.01 until training error < 80 %" in recipe_lines(
               depth, "paper", "/data")  # fmt: skip
    imagenet = runpy.run_path(str(REPO / "studies" / "imagenet_depth.py"))["STUDY"]
    assert "per-channel mean and std; evaluation every 1000 iterations, centre view; 10-crop at the end; " \
           "multi-scale at the end" in recipe_lines(imagenet, "paper", "/data")  # fmt: skip
    assert TrainConfig("resnet18", dataset="imagenet").normalization == "channel"
    assert TrainConfig("cifar_resnet20").normalization == "pixel_mean"
