"""Rubric versions of the health score, as the run summary, the Slack digest and `csops rubric diff` name them.

Every row of marts.fct_health_scores carries the rubric version it was computed with (`rubric_version`, the
label; `rubric_hash`, md5 of the rubric seeds). On the first run after the rubric seeds changed, a company's
row also holds the same day's total and status under the rubric of its previous row
(`total_score_previous_rubric`, `health_status_previous_rubric`), which is what `rubric_change()` counts: how
many scores and statuses the rubric moved, with no customer doing anything different. The scoring itself is
dbt's (models/marts/health/fct_health_scores.sql, macros/health_rubric.sql).
"""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

# The rubric seeds (dbt_project/seeds/health/) a rubric version covers, as macros/health_rubric.sql reads them.
RUBRIC_SEEDS = ("health_indicators", "health_thresholds", "health_status_bands", "health_settings",
                "health_rubric_version")


def rubric_change(connection: psycopg.Connection, run_date: date) -> dict | None:
    """What the rubric changed on `run_date`, or None when every company scored that day kept the rubric of its
    previous row.

    Returns {"run_date", "previous_version", "current_version", "previous_hash", "current_hash", "companies"
    (scored under both rubrics), "scores_changed", "statuses_changed", "transitions" ({"Red→Yellow": 13, …},
    most first)}. Scores and statuses are compared on the same day's values, previous rubric against the current
    one; statuses are the effective ones (a CSM's override in force wins under both). When companies came from
    several earlier rubrics, `previous_version` names them all, most rows first."""
    rows = connection.cursor(row_factory=dict_row).execute(
        """
        select rubric_version, rubric_hash, previous_rubric_version, previous_rubric_hash,
            total_score, total_score_previous_rubric, health_status, health_status_previous_rubric
        from marts.fct_health_scores
        where score_date = %s and previous_rubric_hash is not null
        """, (run_date,)).fetchall()
    if not rows:
        return None
    current = Counter((row["rubric_version"], row["rubric_hash"]) for row in rows).most_common()
    previous = Counter((row["previous_rubric_version"], row["previous_rubric_hash"]) for row in rows).most_common()
    moved = Counter(f"{row['health_status_previous_rubric'] or 'none'}→{row['health_status'] or 'none'}"
                    for row in rows if row["health_status"] != row["health_status_previous_rubric"])
    return {
        "run_date": run_date,
        "previous_version": ", ".join(label for (label, _hash), _count in previous),
        "current_version": current[0][0][0],
        "previous_hash": previous[0][0][1],
        "current_hash": current[0][0][1],
        "companies": len(rows),
        "scores_changed": sum(row["total_score"] != row["total_score_previous_rubric"] for row in rows),
        "statuses_changed": sum(moved.values()),
        "transitions": dict(sorted(moved.items(), key=lambda item: (-item[1], item[0]))),
    }


def version_names(change: dict) -> tuple[str, str]:
    """The two labels, each with its hash's first 7 characters when the labels alone do not tell them apart."""
    before, after = change["previous_version"], change["current_version"]
    if before == after:
        return f"{before} ({change['previous_hash'][:7]})", f"{after} ({change['current_hash'][:7]})"
    return before, after


def format_rubric_change(change: dict, language: str = "en") -> str:
    """One line naming a rubric change: "rubric v3 → v4: 90 scores changed, 17 statuses: Red→Yellow 13,
    Yellow→Green 4"; language "ja" for the Japanese Slack digest."""
    before, after = version_names(change)
    if language == "ja":
        moves = "、".join(f"{transition} {count:,}社" for transition, count in change["transitions"].items())
        return (f"ルーブリック変更 {before} → {after}：スコア変更 {change['scores_changed']:,}社、"
                f"ステータス変更 {change['statuses_changed']:,}社" + (f"（{moves}）" if moves else "")
                + "。顧客の変化ではないため、プレイブックは発火しません")
    if language != "en":
        raise ValueError(f"format_rubric_change: language must be 'en' or 'ja', not {language!r}")
    moves = ", ".join(f"{transition} {count:,}" for transition, count in change["transitions"].items())
    scores, statuses = change["scores_changed"], change["statuses_changed"]
    return (f"rubric {before} → {after}: {scores:,} score{'' if scores == 1 else 's'} changed, "
            f"{statuses:,} status{'' if statuses == 1 else 'es'}" + (f": {moves}" if moves else ""))


def read_rubric_seeds(seeds_dir: Path) -> dict[str, list[dict]]:
    """The rubric seeds' rows as the working copy holds them (edits not yet committed included), each cell as
    text and an empty cell as None."""
    rubric = {}
    for name in RUBRIC_SEEDS:
        path = seeds_dir / "health" / f"{name}.csv"
        if not path.exists():
            raise FileNotFoundError(f"the rubric seed {path} is missing")
        with path.open(newline="", encoding="utf-8") as handle:
            rubric[name] = [{key: (value if value != "" else None) for key, value in row.items()}
                            for row in csv.DictReader(handle)]
    return rubric


class RubricDiffError(RuntimeError):
    """The diff could not be computed: the warehouse has no scores yet, or dbt could not compile it."""


def compile_rubric_diff(dbt_executable: Path, project_dir: Path, environment: dict[str, str],
                        rubric: dict[str, list[dict]]) -> str:
    """The SQL of the dbt macro health_rubric_diff() for the proposed `rubric`, compiled by dbt (no model is
    built)."""
    completed = subprocess.run(
        [str(dbt_executable), "--quiet", "--log-format", "text", "compile", "--inline", "{{ health_rubric_diff() }}",
         "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
         "--vars", json.dumps({"rubric_proposal": rubric})],
        env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-3000:]
        raise RubricDiffError(f"dbt could not compile the rubric diff:\n{output}")
    return completed.stdout


def rubric_diff(connection: psycopg.Connection, diff_sql: str) -> dict:
    """Runs the compiled diff: the latest scored date's companies under the stored rubric and the proposal.

    Returns {"score_date", "stored_version", "stored_hash", "proposed_version", "proposed_hash", "companies",
    "moves": [{"company_id", "company_name", "total_score_before", "total_score_after", "health_status_before",
    "health_status_after", "override_status"}, …] (every company whose score or status would move, status moves
    first), "scores_changed", "statuses_changed", "transitions"}."""
    rows = connection.cursor(row_factory=dict_row).execute(diff_sql).fetchall()
    if not rows:
        raise RubricDiffError("marts.fct_health_scores has no scores yet: run the daily job (make run) first")
    moves = [row for row in rows if row["total_score_before"] != row["total_score_after"]
             or row["health_status_before"] != row["health_status_after"]]
    moves.sort(key=lambda row: (row["health_status_before"] == row["health_status_after"], row["company_id"]))
    moved = Counter(f"{row['health_status_before'] or 'none'}→{row['health_status_after'] or 'none'}"
                    for row in moves if row["health_status_before"] != row["health_status_after"])
    first = rows[0]
    return {
        "score_date": first["score_date"],
        "stored_version": first["stored_rubric_version"],
        "stored_hash": first["stored_rubric_hash"],
        "proposed_version": first["proposed_rubric_version"],
        "proposed_hash": first["proposed_rubric_hash"],
        "companies": len(rows),
        "moves": moves,
        "scores_changed": sum(row["total_score_before"] != row["total_score_after"] for row in rows),
        "statuses_changed": sum(moved.values()),
        "transitions": dict(sorted(moved.items(), key=lambda item: (-item[1], item[0]))),
    }


def format_rubric_diff(diff: dict) -> str:
    """The diff for a terminal: the summary line, then one line per company that would move."""
    header = (f"Working-copy rubric {diff['proposed_version']} ({diff['proposed_hash'][:7]}) against the rubric "
              f"the warehouse last scored with, {diff['stored_version']} ({diff['stored_hash'][:7]}), "
              f"on {diff['score_date']:%Y-%m-%d} ({diff['companies']:,} companies):")
    if diff["proposed_hash"] == diff["stored_hash"]:
        return header + "\n  the same rubric: no company would move."
    line = format_rubric_change({"previous_version": diff["stored_version"], "current_version":
                                 diff["proposed_version"], "previous_hash": diff["stored_hash"],
                                 "current_hash": diff["proposed_hash"], **diff})
    lines = [header, f"  {line}"]
    if not diff["moves"]:
        lines.append("  no company's score or status would move.")
        return "\n".join(lines)
    width = max(len(row["company_id"]) for row in diff["moves"])
    lines += ["", f"  {'company':<{width}}  {'score':>12}  {'status':<16}  name"]
    for row in diff["moves"]:
        score = f"{number(row['total_score_before'])} → {number(row['total_score_after'])}"
        status = (f"{row['health_status_before'] or '-'} → {row['health_status_after'] or '-'}"
                  if row["health_status_before"] != row["health_status_after"] else row["health_status_after"] or "-")
        note = f"  (override {row['override_status']} in force)" if row["override_status"] else ""
        lines.append(f"  {row['company_id']:<{width}}  {score:>12}  {status:<16}  {row['company_name'] or ''}{note}")
    return "\n".join(lines)


def number(value) -> str:
    return "-" if value is None else f"{value:.2f}"
