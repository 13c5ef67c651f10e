"""The dashboard: its queries and figures on a store filled by a real smoke study, and the Streamlit app
run by Streamlit's AppTest against that store, an empty store and a server that is down."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import REPO, SUBSET
from helpers import CHROMIUM, app_test, free_port, serve
from reslab.dashboard import error_curve_figure, seed_bands
from reslab.dashboard.text import markdown_text

STUDY = """
import sys
from reslab.launch import main
from reslab.study import Claim, Study, grid

STUDY = Study(
    "dash", "Fig. 6 in small", "cifar10", grid(model=["cifar_plain20", "cifar_resnet20"]),
    settings={"iterations": 24, "eval_every": 6, "batch_size": 32}, paper={"cifar_resnet20": 8.75},
    layer_responses=True,
    claims=(Claim("resnet20-beats-plain20", "ResNet-20 has lower test error than plain-20", "Fig. 6", "test_error",
                  lower="cifar_resnet20", higher="cifar_plain20"),),
)
if __name__ == "__main__":
    sys.exit(main(STUDY))
"""


def curves_frame() -> pd.DataFrame:
    rows = []
    for seed, offset in ((0, 0.0), (1, 2.0)):
        for step in (10, 20):
            rows.append(("resnet", seed, f"r{seed}", "test_error", step, 50.0 - step + offset))
            rows.append(("resnet", seed, f"r{seed}", "train_error", step, 40.0 - step + offset))
    return pd.DataFrame(rows, columns=["variant", "seed", "run_id", "metric", "iteration", "error"])


def test_seed_bands_are_mean_and_std_over_seeds() -> None:
    bands = seed_bands(curves_frame()).set_index(["metric", "iteration"])
    assert bands.loc[("test_error", 10), "mean"] == 41.0 and bands.loc[("test_error", 10), "n"] == 2
    assert bands.loc[("test_error", 10), "std"] == pytest.approx(2**0.5)


def test_the_curve_figure_draws_train_dashed_test_bold_and_a_band() -> None:
    figure = error_curve_figure(curves_frame())
    lines = {t.name: t for t in figure.data if t.mode == "lines"}
    assert lines["resnet train"].line.dash == "dash" and lines["resnet test"].line.dash == "solid"
    assert lines["resnet test"].line.width > lines["resnet train"].line.width
    assert any(t.fill == "toself" for t in figure.data)  # the ±std band
    assert list(lines["resnet test"].y) == [41.0, 31.0]
    single = error_curve_figure(curves_frame(), single_seeds=True, log_y=True)
    assert len([t for t in single.data if "seed" in t.name]) == 4 and single.layout.yaxis.type == "log"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, cifar_subset: Path) -> str:
    """A store filled by a real smoke study on the real CIFAR subset."""
    folder = tmp_path_factory.mktemp("dashboard")
    (folder / "dash.py").write_text(STUDY)
    return run_study(folder / "dash.py", folder, "--data-dir", str(cifar_subset))


def run_study(script: Path, folder: Path, *args: str) -> str:
    """Run a study script with `folder` as its storage and working directory; its store's URI."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(script), "--storage", str(folder), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return f"sqlite:///{folder / 'runs' / 'mlflow.db'}"


@pytest.mark.slow
def test_queries_read_the_study_as_the_summary_has_it(store: str) -> None:
    from reslab.dashboard import error_curves, list_studies, results_table, study_definition, trial_runs

    studies = list_studies(store)
    assert studies.loc[0, "study"] == "dash-smoke" and studies.loc[0, "trials"] == 2
    assert studies.loc[0, "finished"] == 2 and studies.loc[0, "progress %"] == 100.0
    definition = study_definition(store, "dash-smoke")
    assert definition.variants == ["cifar_plain20", "cifar_resnet20"] and definition.paper == {"cifar_resnet20": 8.75}
    runs = trial_runs(store, "dash-smoke")
    curves = error_curves(store, runs)
    assert sorted(curves["iteration"].unique()) == [6, 12, 18, 24]
    assert len(curves) == 2 * 2 * 4  # 2 trials x train/test x 4 reports
    table = results_table(runs, definition).set_index("variant")
    summary = pd.read_csv(Path(store.removeprefix("sqlite:///")).parents[1] / "dash-smoke" / "summary.csv")
    summary = summary.set_index("variant")
    for variant in ("cifar_plain20", "cifar_resnet20"):  # the dashboard's numbers are the study's own
        assert table.loc[variant, "test_error_mean"] == pytest.approx(summary.loc[variant, "test_error_mean"])
    assert math.isnan(table.loc["cifar_resnet20", "paper_test_error"])  # a smoke run is not set beside the paper
    quick = results_table(runs, replace(definition, profile="quick")).set_index("variant")
    assert quick.loc["cifar_resnet20", "paper_test_error"] == 8.75  # a profile that can test: the paper's number

    from reslab.dashboard import layer_responses, registered_models

    responses = layer_responses(store, runs)
    assert responses.groupby("variant")["layer"].max().to_dict() == {"cifar_plain20": 19, "cifar_resnet20": 19}
    assert (responses["std"] > 0).all()
    models = registered_models(store).set_index("name")
    assert sorted(models.index) == ["cifar10-cifar_plain20", "cifar10-cifar_resnet20-A"]
    assert models.loc["cifar10-cifar_resnet20-A", "aliases"] == "best"
    assert (
        models.loc["cifar10-cifar_resnet20-A", "pull"]
        == f"reslab models pull cifar10-cifar_resnet20-A/1 --out models/ --tracking-uri {store}"
    )
    assert models.loc["cifar10-cifar_resnet20-A", "test_error"] == pytest.approx(
        table.loc["cifar_resnet20", "test_error_mean"]
    )


@pytest.mark.slow
def test_a_store_rebuilt_by_sync_shows_the_same_study(store: str, tmp_path: Path) -> None:
    """A store that lost the study is rebuilt from Ray's experiment folder by `reslab tracking sync`: the
    launch comes back with its provenance and the paper's numbers, so every view shows what it did."""
    from reslab.dashboard import layer_responses, results_table, study_definition, trial_runs

    folder = Path(store.removeprefix("sqlite:///")).parents[1] / "dash-smoke"
    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    reslab = str(Path(sys.executable).with_name("reslab"))
    command = [reslab, "tracking", "sync", str(folder), "--tracking-uri", rebuilt]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    original, copy = study_definition(store, "dash-smoke"), study_definition(rebuilt, "dash-smoke")
    assert copy.paper == original.paper == {"cifar_resnet20": 8.75} and copy.variants == original.variants
    assert copy.title == "Fig. 6 in small" and copy.provenance == original.provenance
    assert "dash.py" in copy.provenance["command"]
    runs, copied_runs = trial_runs(store, "dash-smoke"), trial_runs(rebuilt, "dash-smoke")
    pd.testing.assert_frame_equal(results_table(copied_runs, copy), results_table(runs, original))
    pd.testing.assert_frame_equal(layer_responses(rebuilt, copied_runs), layer_responses(store, runs))

    # beside the store, not in ./mlruns; the launch it brought back is closed; a second sync changes nothing
    from mlflow import MlflowClient

    assert (tmp_path / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()
    client = MlflowClient(rebuilt, registry_uri=rebuilt)
    experiment = client.get_experiment_by_name("dash-smoke").experiment_id
    assert {r.info.status for r in client.search_runs([experiment])} == {"FINISHED"}
    assert "registered models:/cifar10-cifar_resnet20-A/1" in done.stdout
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "registered" not in again.stdout, again.stdout + again.stderr
    assert "0 runs created, 0 missing steps logged, 0 runs closed" in again.stdout
    versions = client.search_model_versions("name = 'cifar10-cifar_resnet20-A'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(client.get_model_version_by_alias("cifar10-cifar_resnet20-A", "best").version) == "1"
    assert len(client.search_runs([experiment])) == 3  # one launch and two trials, not a second launch


@pytest.mark.slow
def test_the_app_shows_the_study_its_curves_and_its_table(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_test(store, monkeypatch)
    assert not app.exception
    assert app.sidebar.selectbox[0].value == "dash-smoke"
    assert [b.label for b in app.sidebar.get("download_button")] == ["Download report (HTML)"]
    assert app.sidebar.toggle[0].label == "Live (every 10 s)" and app.sidebar.toggle[0].value is False  # none running
    assert any("2 trials (2 finished) · latest report at iteration 24" in c.value for c in app.caption)
    frames = [d.value for d in app.dataframe]  # in tab order: Tables (2), Verdicts, then the store's three
    table, trials, verdicts, studies, _, card = frames
    assert studies.loc[0, "study"] == "dash-smoke" and studies.loc[0, "finished"] == 2
    assert sorted(trials["variant"]) == ["cifar_plain20", "cifar_resnet20"] and set(trials["status"]) == {"finished"}
    # every number traced to its run and recipe: the run id, the recipe's values and the data folder it read
    assert trials["run_id"].str.fullmatch("[0-9a-f]{32}").all() and set(trials["batch_size"]) == {"32"}
    assert set(trials["lr"]) == {"0.1"} and set(trials["data_dir"]) == {str(SUBSET)}
    assert any(markdown_text(f"mlflow ui --backend-store-uri {store}") in c.value for c in app.caption)  # file store
    assert [t.label for t in app.tabs] == [  # this study's views (no Search: it is a grid), then the store's
        "Error curves", "Tables", "Verdicts", "Layer responses", "Store: studies", "Store: models", "Store: scorecard"
    ]  # fmt: skip
    assert list(verdicts["verdict"]) == ["not tested (the smoke profile is too short to test the paper's claims)"]
    assert list(verdicts["evidence"]) == ["none"] and list(card["evidence"]) == ["none"]  # the evidence level
    assert list(card["claim"]) == ["ResNet-20 has lower test error than plain-20"] and list(card["study"]) == [
        "dash-smoke"
    ]
    charts = app.get("plotly_chart")
    assert len(charts) == 2  # the error curves and Fig. 7
    assert "by layer index" in charts[1].proto.spec
    command = f"reslab models pull cifar10-cifar_resnet20-A/1 --out models/ --tracking-uri {store}"
    (pull,) = [box for box in app.selectbox if box.label == "Pull"]
    assert command in pull.options
    pull.set_value(command).run()
    assert any(c.value == command for c in app.get("code"))  # the chosen version's command
    assert "cifar_resnet20 test" in charts[0].proto.spec
    assert "paper %" not in table.columns  # a smoke run: no paper column, as in its summary
    app.multiselect[0].set_value(["cifar_plain20"]).run()
    assert "cifar_resnet20 test" not in app.get("plotly_chart")[0].proto.spec
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["rangemode"] == "tozero" and spec["layout"]["legend"]["orientation"] == "h"
    (curve,) = [box for box in app.selectbox if box.label == "Curve"]
    curve.set_value("training loss").run()  # any other curve the runs logged
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"] == "training loss" and spec["data"][0]["name"] == "cifar_plain20"
    steps = spec["data"][0]["x"]  # plotly may send the array as typed bytes
    assert (list(base64.b64decode(steps["bdata"])) if isinstance(steps, dict) else steps) == [6, 12, 18, 24]
    curve.set_value("validation error (%)").run()
    assert any("No run of this study logged validation error" in i.value for i in app.info)


def test_the_scorecard_keeps_each_claims_strongest_evidence_then_the_newest(tmp_path: Path) -> None:
    """Three launches record verdicts through the study's writer into a real store: a paper-length verdict
    is not hidden by a later quick run's indicative result, nor that by a later smoke run's "not tested"; a
    claim only the smoke run has stays "not tested"; the tally counts verdicts only, reslab's own apart."""
    from reslab.dashboard import scorecard, scorecard_markdown, study_verdicts
    from reslab.results.verdicts import VERDICT_COLUMNS
    from reslab.tracking.writer import MLflowWriter

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def launch(profile: str, rows: list[dict]) -> None:
        writer = MLflowWriter(uri, "depth-cifar10", {"profile": profile}, {})
        writer.start_launch()
        writer.record_verdicts(pd.DataFrame([{c: row.get(c) for c in VERDICT_COLUMNS} for row in rows]))
        writer.end_launch()

    holds = {"claim": "deeper", "statement": "Deeper is better", "source": "Table 6", "verdict": "holds",
             "evidence": "verdict", "effect": 1.2, "ci_low": 0.4, "ci_high": 2.0, "adj_low": 0.1, "adj_high": 2.3,
             "n_lower": 3, "n_higher": 3, "transferred": False}  # fmt: skip
    transferred = {**holds, "claim": "b-beats-a-cifar", "statement": "B beats A on CIFAR", "source": "Table 3",
                   "verdict": "inconclusive", "transferred": True}  # fmt: skip
    launch("paper", [holds, transferred])
    indicative = {"verdict": "indicative", "evidence": "indicative", "leans": "fails", "effect": -0.5,
                  "adj_low": math.nan, "adj_high": math.nan, "reason": "trained 3.12 % of the schedule"}  # fmt: skip
    launch("quick", [{**holds, **indicative}])
    untested = {"verdict": "not tested", "evidence": "none", "effect": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "adj_low": math.nan, "adj_high": math.nan, "n_lower": 1, "n_higher": 1,
                "reason": "the smoke profile is too short to test the paper's claims"}  # fmt: skip
    launch("smoke", [{**holds, **untested}, {**holds, **untested, "claim": "overfits", "statement": "1202 overfits"}])
    card = scorecard(uri).set_index("claim")
    assert card.loc["deeper", "verdict"] == "holds" and card.loc["deeper", "profile"] == "paper"
    assert card.loc["deeper", "n"] == "3/3" and card.loc["deeper", "effect"] == pytest.approx(1.2)
    assert card.loc["overfits", "verdict"] == "not tested" and card.loc["overfits", "profile"] == "smoke"
    assert list(study_verdicts(uri, "depth-cifar10")["verdict"]) == ["not tested", "not tested"]  # the latest launch
    text = scorecard_markdown(scorecard(uri))
    assert (
        "| Deeper is better | Table 6 | holds | +1.20 | [+0.40, +2.00] | [+0.10, +2.30] | 3/3 | depth-cifar10 | paper |"
        in text
    )
    assert "| B beats A on CIFAR (reslab's claim) | Table 3 | inconclusive |" in text
    assert (
        "The paper's claims: 1 of 1 verdicts hold (0 fail, 0 inconclusive); 0 only indicative; 1 not tested; "
        "reslab's own (transferred) claims: 0 of 1 verdicts hold (0 fail, 1 inconclusive)" in text
    )
    printed = subprocess.run(
        [str(Path(sys.executable).with_name("reslab")), "scorecard", "--tracking-uri", uri],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert printed.stdout == text


def test_an_empty_store_gets_a_friendly_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_test(f"sqlite:///{tmp_path / 'empty.db'}", monkeypatch)
    assert not app.exception
    assert "No studies yet" in app.info[0].value
    assert "studies/plain_vs_residual.py" in app.get("code")[0].value


def test_an_unreachable_store_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = app_test(uri, monkeypatch)
    assert not app.exception
    assert markdown_text(uri) in app.error[0].value and "unreachable" in app.error[0].value  # shown as text


@pytest.fixture(scope="module")
def dashboard(store: str) -> Iterator[str]:
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    with serve(store) as url:
        yield url


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.slow
def test_the_dashboard_renders_in_headless_chromium(dashboard: str, chromium: Any, tmp_path: Path) -> None:
    """Chromium opens the app, the curve chart draws, and the page shows the study and a plotted trace
    with no exception."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(dashboard)
    page.get_by_role("tab", name="Error curves").click()
    page.wait_for_selector(".js-plotly-plot .legendtext", timeout=90_000)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    text = page.inner_text("body")
    assert "dash-smoke: Fig. 6 in small" in text
    assert "cifar_resnet20 test" in legend and "cifar_plain20 train" in legend
    assert page.locator("[data-testid='stException']").count() == 0 and "Traceback" not in text
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    page.get_by_role("tab", name="Verdicts").click()
    page.get_by_text("A verdict needs the paper's full schedule", exact=False).first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="Scorecard").click()
    page.get_by_text("What has been reproduced").wait_for(timeout=30_000)
    assert "0 of 0 verdicts hold (0 fail, 0 inconclusive); 0 only indicative; 1 not tested" in page.inner_text("body")


@pytest.mark.slow
def test_live_mode_redraws_as_a_study_reports(store: str, chromium: Any, tmp_path: Path) -> None:
    """With Live on, a report written into the store reaches the open page on its own, no click needed:
    the trial shows as running and the newest iteration appears."""
    import sqlite3

    from mlflow import MlflowClient

    source = sqlite3.connect(store.removeprefix("sqlite:///"))
    with sqlite3.connect(tmp_path / "live.db") as copy:  # a consistent copy of the WAL-mode store
        source.backup(copy)
    source.close()
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    with serve(uri) as url:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("latest report at iteration 24").wait_for(timeout=90_000)
        page.get_by_text("Live (every 10 s)").click()
        page.get_by_text("live, every 10 s").wait_for(timeout=30_000)

        client = MlflowClient(uri)
        (run,) = client.search_runs(
            [client.get_experiment_by_name("dash-smoke").experiment_id], "tags.`reslab.variant` = 'cifar_resnet20'"
        )
        client.update_run(run.info.run_id, "RUNNING")  # as a restored driver reopens a trial's run
        client.log_metric(run.info.run_id, "test_error", 0.61, step=30)
        client.log_metric(run.info.run_id, "train_error", 0.55, step=30)
        page.get_by_text("latest report at iteration 30").wait_for(timeout=60_000)  # no interaction since
        assert "1 running" in page.inner_text("body")
        assert page.locator("[data-testid='stException']").count() == 0


@pytest.mark.slow
def test_the_report_downloaded_from_the_dashboard_draws_offline(dashboard: str, chromium: Any, tmp_path: Path) -> None:
    """The sidebar's report button downloads one HTML file; opened with the network cut off, it draws the
    error curves and Fig. 7 and asks for nothing outside itself."""
    context = chromium.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(dashboard)
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download report (HTML)").click()
    report = tmp_path / download.value.suggested_filename
    download.value.save_as(report)
    assert report.name == "dash-smoke.html"

    offline = chromium.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    viewer = offline.new_page()
    requests: list[str] = []
    errors: list[str] = []
    viewer.on("request", lambda request: requests.append(request.url))
    viewer.on("pageerror", lambda error: errors.append(str(error)))
    viewer.goto(report.as_uri())
    viewer.wait_for_selector(".js-plotly-plot .legendtext", timeout=60_000)
    viewer.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    legend = viewer.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert viewer.locator(".js-plotly-plot").count() == 2  # the error curves and Fig. 7
    assert "cifar_resnet20 test" in legend and "cifar_plain20 train" in legend
    assert "Results beside the paper" in viewer.inner_text("body")
    assert [url for url in requests if not url.startswith("file:")] == [] and errors == []


@pytest.mark.slow
def test_reslab_report_writes_the_studys_numbers_into_one_file(store: str, tmp_path: Path) -> None:
    """`reslab report` writes the paper-shaped table with the study's own numbers, both figures with
    plotly.js inlined and no outside reference, each trial with its recipe and run id; a study that is not
    there is named with those that are."""
    import re

    from reslab.dashboard import trial_runs

    reslab = str(Path(sys.executable).with_name("reslab"))
    out = tmp_path / "reports" / "dash.html"
    done = subprocess.run(
        [reslab, "report", "dash-smoke", "--tracking-uri", store, "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    summary = pd.read_csv(Path(store.removeprefix("sqlite:///")).parents[1] / "dash-smoke" / "summary.csv")
    for row in summary.itertuples():  # one seed each: the table shows "mean (1)"
        assert f"<td>{row.variant}</td>" in page and f"<td>{row.test_error_mean:.2f} (1)</td>" in page
    assert "<td>8.75</td>" not in page  # a smoke run is not set beside the paper's ResNet-20
    assert "2 trials (2 finished) · profile smoke" in page and "dash.py" in page  # the launch's command
    runs = trial_runs(store, "dash-smoke")
    assert all(f"<td>{run_id}</td>" in page for run_id in runs["run_id"]) and "<th>data_dir</th>" in page
    assert page.count("Plotly.newPlot(") == 2 and '"name":"cifar_resnet20 test"' in page
    assert "Layer responses (Fig. 7)" in page and "reslab models pull cifar10-cifar_resnet20-A/1" in page
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=""", page)  # nothing loaded from outside

    missing = subprocess.run(
        [reslab, "report", "nope", "--tracking-uri", store, "--out", str(tmp_path / "nope.html")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr and "dash-smoke" in missing.stderr
    assert not (tmp_path / "nope.html").exists()


@pytest.mark.slow
def test_the_search_view_shows_the_sampled_values_of_a_real_lr_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reslab.dashboard import search_figure, search_trials

    uri = run_study(REPO / "studies" / "lr_search.py", tmp_path)
    trials = search_trials(uri, "lr_search-smoke")
    assert len(trials) == 4 and trials["lr"].between(0.01, 1.0).all()
    assert trials["weight_decay"].between(1e-5, 1e-3).all()
    finished = trials[trials["complete"]]
    assert len(finished) >= 1 and finished["validation_error"].is_monotonic_increasing  # best first, as selected
    assert trials["validation_error"].notna().all() and trials["test_error"].notna().all()
    labels = [d.label for d in search_figure(trials).data[0].dimensions]
    assert labels == ["log10 lr", "log10 weight_decay", "iterations", "validation error (%)", "test error (%)"]
    app = app_test(uri, monkeypatch)
    assert not app.exception
    assert any("Parcoords" in c.proto.spec or "parcoords" in c.proto.spec for c in app.get("plotly_chart"))
