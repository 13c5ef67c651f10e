"""A store written by someone hostile: nothing it holds runs or calls out from the report or the dashboard, and
a malformed tag or param skips its row with a warning instead of taking a view down."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import CHROMIUM, app_test, serve
from reslab.tracking.layout import TRIAL_TAG, VARIANT_TAG
from reslab.tracking.writer import MLflowWriter, TrialRecord
from reslab.training import Recipe, TrainConfig

EXPERIMENT = "evil-smoke"


class Beacon(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that counts the requests a browser makes to it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        beacon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                beacon.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def beacon() -> Iterator[Beacon]:
    server = Beacon()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, beacon: Beacon) -> dict[str, str]:
    """A real SQLite store with a study whose title, profile and variant label carry a script, an image and a
    styled link pointing at the beacon, and a registered net with a version whose test error is not a number."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'mlflow.db'}"
    label = f'<img src="{beacon.url}/variant.png" onerror="window.PWNED=1">'
    title = f"![beacon]({beacon.url}/title.png) <script>window.PWNED=2</script>"
    profile = "<script>window.PWNED=3</script>"
    definition = {"title": title, "profile": profile, "variants": [label], "paper": {label: 7.5}}
    writer = MLflowWriter(uri, EXPERIMENT, {"profile": profile}, definition)
    writer.start_launch()
    config = TrainConfig("cifar_resnet20", dataset="synthetic", recipe=Recipe(batch_size=8, iterations=4)).to_dict()
    trial = TrialRecord(trial_id="t1", label=label, seed=0, config=config)
    for step in (2, 4):
        writer.log_result(trial, {"iteration": step, "test_error": 0.5 / step, "train_error": 0.4 / step})
    writer.close(trial, {"iteration": 4, "test_error": 0.125, "train_error": 0.1})
    other = TrialRecord(trial_id="t2", label="cifar_resnet20", seed=1, config=config)
    writer.log_result(other, {"iteration": 4, "test_error": 0.2, "train_error": 0.1})
    writer.close(other, {"iteration": 4, "test_error": 0.2, "train_error": 0.1})
    writer.end_launch()
    client = MlflowClient(uri, registry_uri=uri)
    forged = client.create_run(writer.experiment_id, tags={TRIAL_TAG: "t3", VARIANT_TAG: "forged"}, run_name="forged")
    client.log_param(forged.info.run_id, "seed", "one")  # a seed that is not a number
    client.set_terminated(forged.info.run_id, "FINISHED")
    run_id = writer.run_for(trial, reopen=False)
    client.create_registered_model("evil-net")
    source = client.get_run(run_id).info.artifact_uri
    client.create_model_version("evil-net", source, run_id, tags={"test_error": "n/a", "train_error": "0.1"})
    client.create_model_version("evil-net", source, run_id, tags={"test_error": "0.125", "train_error": "0.1"})
    return {"uri": uri, "label": label, "title": title}


def test_a_tag_that_is_not_a_number_skips_its_row_with_a_warning(hostile: dict[str, str], caplog) -> None:
    from reslab.dashboard import list_studies, registered_models, trial_runs

    uri = hostile["uri"]
    models = registered_models(uri)
    assert models["version"].tolist() == [2] and models["test_error"].tolist() == [12.5]  # version 1 skipped
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("reslab")), "models", "list", "--tracking-uri", uri],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "evil-net" in listed.stdout and "12.50%" in listed.stdout and "Traceback" not in listed.stderr
    assert "skipping evil-net version 1: its tag test_error='n/a' is not a number" in listed.stderr

    runs = trial_runs(uri, EXPERIMENT)
    assert sorted(runs["seed"]) == [0, 1] and "forged" not in set(runs["variant"])  # the forged run skipped
    assert "skipping run forged of evil-smoke: its param seed='one' is not a number" in caplog.text
    assert list_studies(uri).loc[0, "trials"] == 3  # counted among the trials, but in no table


def test_the_report_escapes_every_string_from_the_store(hostile: dict[str, str], tmp_path: Path) -> None:
    from reslab.dashboard.report import study_report

    page = study_report(hostile["uri"], EXPERIMENT)
    assert "<script>window.PWNED" not in page and "<img src=" not in page
    assert "&lt;script&gt;window.PWNED=3&lt;/script&gt;" in page  # the profile, as text
    assert "&lt;img src=&quot;" in page  # the variant label in the tables
    assert page.count("<script") == page.count("</script>") == 2  # plotly.js and the error curves
    (tmp_path / "report.html").write_text(page)


@pytest.mark.slow
def test_the_app_shows_store_strings_as_text(hostile: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_test(hostile["uri"], monkeypatch)
    assert not app.exception
    shown = [e.value for e in (*app.subheader, *app.markdown, *app.caption, *app.error, *app.info)]
    assert not any("](" in text or "<img" in text for text in shown)
    assert any(r"\!\[beacon\]\(http\:\/\/127\.0\.0\.1" in text for text in shown)  # the title, escaped


@pytest.mark.slow
def test_nothing_from_the_store_runs_or_calls_out_in_chromium(
    hostile: dict[str, str], beacon: Beacon, tmp_path: Path
) -> None:
    """The report and the dashboard opened in headless Chromium: no request reaches the beacon, no script of
    the store's runs, and the hostile title reads as its literal text."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from reslab.dashboard.report import study_report

    report = tmp_path / "report.html"
    report.write_text(study_report(hostile["uri"], EXPERIMENT))
    with sync_playwright() as playwright, serve(hostile["uri"]) as url:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(report.as_uri())
        page.wait_for_selector(".js-plotly-plot .legendtext", timeout=60_000)
        assert page.evaluate("window.PWNED") is None
        assert hostile["label"] in page.inner_text("body")  # the label, as text
        page.goto(url)
        page.get_by_role("tab", name="Error curves").click()
        page.wait_for_selector(".js-plotly-plot .legendtext", timeout=90_000)
        assert hostile["title"].split(" <script>")[0] in page.inner_text("body")
        page.get_by_role("tab", name="Tables").click()
        page.get_by_role("tab", name="Models").click()
        page.wait_for_timeout(2000)
        assert page.evaluate("window.PWNED") is None
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
    assert beacon.paths == []
