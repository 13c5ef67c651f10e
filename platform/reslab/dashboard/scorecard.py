"""What has been reproduced: each study's verdicts on the paper's claims, and the scorecard across a store.

A study records its verdicts on its launch run (a tag per claim, the full table as `verdicts.csv`); these
queries read them back. The scorecard keeps, for every claim any study in the store declares, its result
with the strongest evidence — a verdict over an indicative result over "not tested" — and the newest among
equals: a later quick or subset run never hides a paper-length verdict. Its tally counts verdicts only, and
keeps reslab's own (transferred) claims apart from the paper's.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from ..results.verdicts import EVIDENCE_RANK, INDICATIVE, INTERVAL, VERDICT_COLUMNS, VERDICT_LEVEL, verdict_text
from ..tracking.layout import LAUNCH_TAG, PROFILE_TAG, VERDICT_TAG, VERDICTS_ARTIFACT
from .queries import client_for, experiment_of

NUMERIC_COLUMNS = {
    "within", "value", "effect", "ci_low", "ci_high", "adj_low", "adj_high", "alpha", "p", "n_lower", "n_higher",
    "schedule", "train_images",
}  # fmt: skip
SCORECARD_COLUMNS = [
    "claim", "statement", "source", "verdict", "evidence", "leans", "effect", "ci_low", "ci_high", "adj_low",
    "adj_high", "n", "transferred", "reason", "study", "profile", "launched",
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
    """Every claim the store's studies declare (SCORECARD_COLUMNS), with its result of the strongest evidence
    (the newest among equals); n is finished seeds on each side."""
    client = client_for(uri)
    best: dict[str, dict[str, Any]] = {}
    for experiment in client.search_experiments():
        for launch in _launches(client, experiment.experiment_id):  # newest first
            for row in _verdicts_of(launch).to_dict("records"):
                rank = EVIDENCE_RANK.get(row.get("evidence"), 0)
                kept = best.get(row["claim"])
                if kept is not None and (kept["rank"], kept["launched"]) >= (rank, launch.info.start_time):
                    continue
                n = f"{_count(row.get('n_lower'))}/{_count(row.get('n_higher'))}"
                best[row["claim"]] = {
                    **{key: row.get(key) for key in SCORECARD_COLUMNS if key in row},
                    "transferred": str(row.get("transferred")).lower() == "true",
                    "n": n,
                    "study": experiment.name,
                    "profile": launch.data.tags.get(PROFILE_TAG, ""),
                    "launched": launch.info.start_time,
                    "rank": rank,
                }
    table = pd.DataFrame(list(best.values()), columns=[*SCORECARD_COLUMNS, "rank"])
    table["launched"] = pd.to_datetime(table["launched"], unit="ms")
    return table.drop(columns="rank").sort_values(["transferred", "source", "claim"], ignore_index=True)


def _count(value: Any) -> str:
    return "?" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def scorecard_markdown(table: pd.DataFrame) -> str:
    """The scorecard as a Markdown table: what `reslab scorecard` prints."""
    lines = [
        f"### What has been reproduced (effect: positive in the claim's direction; {INTERVAL})",
        "",
        "| claim | source | verdict | effect | 95% interval | adjusted interval | n | study | profile |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        effect = "—" if pd.isna(row.effect) else f"{row.effect:+.2f}"
        statement = row.statement if isinstance(row.statement, str) and row.statement else row.claim
        if row.transferred:
            statement += " (reslab's claim)"
        verdict = verdict_text(str(row.verdict), row.leans, row.reason)
        lines.append(
            f"| {statement} | {row.source} | {verdict} | {effect} | {_interval(row.ci_low, row.ci_high)} | "
            f"{_interval(row.adj_low, row.adj_high)} | {row.n} | {row.study} | {row.profile} |"
        )
    lines += ["", tally(table) + "."]
    return "\n".join(lines) + "\n"


def verdict_view(table: pd.DataFrame) -> pd.DataFrame:
    """A verdicts (or scorecard) table as a reader takes it in: the claim, its verdict with what the evidence
    lacks, the evidence level, the effect with both intervals as text, n per side."""
    if table.empty:
        return pd.DataFrame(columns=["claim", "source", "verdict", "evidence", "effect", "95% interval",
                                     "adjusted interval", "n"])  # fmt: skip
    rows = table.to_dict("records")
    return pd.DataFrame(
        {
            "claim": [
                (r.get("statement") if isinstance(r.get("statement"), str) else r["claim"])
                + (" (reslab's claim)" if str(r.get("transferred")).lower() == "true" else "")
                for r in rows
            ],
            "source": [r.get("source") for r in rows],
            "verdict": [verdict_text(str(r["verdict"]), r.get("leans"), r.get("reason")) for r in rows],
            "evidence": [r.get("evidence") if isinstance(r.get("evidence"), str) else "" for r in rows],
            "effect": ["—" if pd.isna(r.get("effect")) else f"{r['effect']:+.2f}" for r in rows],
            "95% interval": [_interval(r.get("ci_low"), r.get("ci_high")) for r in rows],
            "adjusted interval": [_interval(r.get("adj_low"), r.get("adj_high")) for r in rows],
            "n": [r["n"] if "n" in r else f"{_count(r.get('n_lower'))}/{_count(r.get('n_higher'))}" for r in rows],
        }
    )


def _interval(low: Any, high: Any) -> str:
    return "—" if pd.isna(low) or pd.isna(high) else f"[{low:+.2f}, {high:+.2f}]"


def tally(table: pd.DataFrame) -> str:
    """The line under a scorecard: of the paper's claims, how many verdicts hold, fail or stay inconclusive,
    how many results are only indicative and how many claims are not tested; reslab's own claims apart."""

    def count(rows: pd.DataFrame) -> str:
        verdicts = rows[rows["verdict"].isin(VERDICT_LEVEL)]
        held, failed = int((verdicts["verdict"] == "holds").sum()), int((verdicts["verdict"] == "fails").sum())
        indicative = int((rows["verdict"] == INDICATIVE).sum())
        untested = len(rows) - len(verdicts) - indicative
        return (
            f"{held} of {len(verdicts)} verdicts hold ({failed} fail, {len(verdicts) - held - failed} "
            f"inconclusive); {indicative} only indicative; {untested} not tested"
        )

    transferred = table["transferred"].astype(bool) if len(table) else pd.Series(dtype=bool)
    line = "The paper's claims: " + count(table[~transferred])
    if transferred.any():
        line += "; reslab's own (transferred) claims: " + count(table[transferred])
    return line
