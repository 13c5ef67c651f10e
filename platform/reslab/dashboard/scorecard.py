"""What has been reproduced: each study's verdicts on the paper's claims, and the scorecard across a store.

A study records its verdicts on its launch run (a tag per claim, the full table as `verdicts.csv`); these
queries read them back. The scorecard keeps, for every claim any study in the store declares, its latest
verdict from a run that could test it (a later smoke run, "not tested", does not hide a quick run's verdict).
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from ..results.claims import HOLDS, INTERVAL, NOT_TESTED, VERDICT_COLUMNS
from ..tracking.layout import LAUNCH_TAG, PROFILE_TAG, VERDICT_TAG, VERDICTS_ARTIFACT
from .queries import client_for, experiment_of

NUMERIC_COLUMNS = {"within", "effect", "ci_low", "ci_high", "n_lower", "n_higher"}
SCORECARD_COLUMNS = [
    "claim", "statement", "source", "verdict", "effect", "ci_low", "ci_high", "n", "study", "profile", "launched",
]  # fmt: skip


def _launches(client: Any, experiment_id: str) -> list[Any]:
    """The experiment's launch runs that recorded verdicts, newest first."""
    launches = client.search_runs(
        [experiment_id], f"tags.{LAUNCH_TAG} = 'true'", order_by=["attributes.start_time DESC"], max_results=1000
    )
    return [r for r in launches if any(key.startswith(VERDICT_TAG) for key in r.data.tags)]


def _verdicts_of(launch: Any) -> pd.DataFrame:
    """A launch's verdicts table; numbers that are not numbers (the store takes any text) read as missing."""
    from mlflow.artifacts import load_text

    try:
        table = pd.read_csv(io.StringIO(load_text(f"{launch.info.artifact_uri}/{VERDICTS_ARTIFACT}")), dtype=str)
    except Exception:  # tags without the table (it failed to upload): the verdicts alone
        claims = {k.removeprefix(VERDICT_TAG): v for k, v in launch.data.tags.items() if k.startswith(VERDICT_TAG)}
        return pd.DataFrame({"claim": list(claims), "verdict": list(claims.values())}, columns=VERDICT_COLUMNS)
    for column in NUMERIC_COLUMNS.intersection(table.columns):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.reindex(columns=list(dict.fromkeys([*VERDICT_COLUMNS, *table.columns])))


def study_verdicts(uri: str, experiment: str) -> pd.DataFrame:
    """The verdicts of the study's latest launch that recorded any (VERDICT_COLUMNS); empty if none did."""
    client = client_for(uri)
    found = experiment_of(client, uri, experiment)
    launches = _launches(client, found.experiment_id)
    return _verdicts_of(launches[0]) if launches else pd.DataFrame(columns=VERDICT_COLUMNS)


def scorecard(uri: str) -> pd.DataFrame:
    """Every claim the store's studies declare (SCORECARD_COLUMNS), with its latest verdict from a run that
    tested it, or its latest "not tested" when none did; n is finished seeds on each side."""
    client = client_for(uri)
    best: dict[str, dict[str, Any]] = {}
    for experiment in client.search_experiments():
        for launch in _launches(client, experiment.experiment_id):  # newest first
            for row in _verdicts_of(launch).to_dict("records"):
                tested = row["verdict"] != NOT_TESTED
                if not _replaces(tested, launch.info.start_time, best.get(row["claim"])):
                    continue
                n = f"{_count(row.get('n_lower'))}/{_count(row.get('n_higher'))}"
                best[row["claim"]] = {
                    **{key: row.get(key) for key in ("claim", "statement", "source", "verdict", "effect")},
                    "ci_low": row.get("ci_low"),
                    "ci_high": row.get("ci_high"),
                    "n": n,
                    "study": experiment.name,
                    "profile": launch.data.tags.get(PROFILE_TAG, ""),
                    "launched": launch.info.start_time,
                    "tested": tested,
                }
    table = pd.DataFrame(list(best.values()), columns=[*SCORECARD_COLUMNS, "tested"])
    table["launched"] = pd.to_datetime(table["launched"], unit="ms")
    return table.drop(columns="tested").sort_values(["source", "claim"], ignore_index=True)


def _replaces(tested: bool, launched: int, kept: dict[str, Any] | None) -> bool:
    """Whether a verdict replaces the one kept for its claim: a tested verdict beats "not tested", and
    between two alike the newer launch wins."""
    if kept is None:
        return True
    if tested != kept["tested"]:
        return tested
    return launched > kept["launched"]


def _count(value: Any) -> str:
    return "?" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def scorecard_markdown(table: pd.DataFrame) -> str:
    """The scorecard as a Markdown table: what `reslab scorecard` prints."""
    lines = [
        f"### What has been reproduced (effect: higher side minus lower side; {INTERVAL})",
        "",
        "| claim | source | verdict | effect | 95% interval | n | study | profile |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        effect = "—" if pd.isna(row.effect) else f"{row.effect:+.2f}"
        interval = "—" if pd.isna(row.ci_low) else f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
        statement = row.statement if isinstance(row.statement, str) and row.statement else row.claim
        lines.append(
            f"| {statement} | {row.source} | {row.verdict} | {effect} | {interval} | {row.n} | {row.study} | "
            f"{row.profile} |"
        )
    lines += ["", tally(table) + "."]
    return "\n".join(lines) + "\n"


def tally(table: pd.DataFrame) -> str:
    """How many tested claims of a scorecard hold, and how many are not tested: the line under its table."""
    held = int(table["verdict"].isin(HOLDS).sum())
    tested = int((table["verdict"] != NOT_TESTED).sum())
    return f"{held} of {tested} tested claims hold; {len(table) - tested} not tested yet"
