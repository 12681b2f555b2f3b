"""Rubric changes are named, not fired: on the built test world, an analyst moves 0.10 of weight from webinars to
login days and bumps the rubric's label, and the run date is computed again. Every row carries the rubric it was
computed with; a status the new rubric changed on the same day's values is a 'rubric_change' and triggers no
playbook; the run's line names the versions and counts what moved; `csops rubric diff` lists the companies a
working-copy edit would move before it is committed."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from csops import cli, settings
from csops.rubric import format_rubric_change, rubric_change
from tests.dbt.test_health_score import INDICATORS, Rubric, edit_csv, mart_rows, two_decimals
from tests.dbt.warehouse import RUN_DATE, dbt

REBUILD = ("path:seeds/health", "path:models/intermediate/health+")


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """A copy of the dbt project that dbt() and the CLI use, for the analyst's edits of the rubric."""
    copy = tmp_path_factory.mktemp("rubric") / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CS_DBT_PROJECT_DIR", str(copy))
        yield copy


@pytest.fixture(scope="module")
def rubric_edit(built_warehouse, project_copy, dbt_target):
    """The run date's rows before and after the analyst's edit (webinars 0.20 → 0.10, login days 0.15 → 0.25,
    label v1 → v2), and the playbook candidates after it."""
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-4000:]
    before_all = mart_rows(warehouse)
    health = project_copy / "seeds" / "health"
    edit_csv(health / "health_indicators.csv", lambda row: row.update(weight={
        "webinars_held": "0.10", "login_days": "0.25"}.get(row["indicator_key"], row["weight"])))
    edit_csv(health / "health_rubric_version.csv", lambda row: row.update(rubric_version="v2"))
    # The daily run of the same date again: seeds, health models and what reads them, incrementally.
    completed = dbt(warehouse, dbt_target, "build", "--select", *REBUILD)
    assert completed.returncode == 0, completed.stdout[-4000:]
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        candidates = connection.execute("select * from activation.playbook_candidates").fetchall()
    return {"warehouse": warehouse, "before_all": before_all, "after_all": mart_rows(warehouse),
            "before": {r["company_id"]: r for r in before_all if r["score_date"] == RUN_DATE},
            "candidates": candidates, "rubric": Rubric(project_copy / "seeds")}


def total_under(rubric: Rubric, row: dict) -> Decimal | None:
    """The total the rubric gives the row's indicator values (as tests/dbt/test_health_score.py computes it)."""
    present = {i: s for i in INDICATORS if (s := rubric.score(row, i)) is not None}
    coverage = sum((rubric.weights[i] for i in present), Decimal(0))
    return two_decimals(sum(s * rubric.weights[i] for i, s in present.items()) / coverage) if coverage else None


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "es" if noun.endswith("s") else "s")


def test_every_row_carries_its_rubric_and_a_rubric_made_status_change_is_named(rubric_edit):
    before, after_all = rubric_edit["before"], rubric_edit["after_all"]
    after = {r["company_id"]: r for r in after_all if r["score_date"] == RUN_DATE}
    assert after.keys() == before.keys()
    old_hashes = {r["rubric_hash"] for r in rubric_edit["before_all"]}
    assert len(old_hashes) == 1 and {r["rubric_version"] for r in rubric_edit["before_all"]} == {"v1"}
    # the run date's rows were computed with the new rubric; the earlier dates keep the one that wrote them
    assert {r["rubric_version"] for r in after.values()} == {"v2"}
    assert {r["rubric_hash"] for r in after.values()}.isdisjoint(old_hashes)
    assert [r for r in after_all if r["score_date"] != RUN_DATE] == [
        r for r in rubric_edit["before_all"] if r["score_date"] != RUN_DATE]
    rubric = rubric_edit["rubric"]
    causes = Counter()
    for company, row in after.items():
        old = before[company]
        assert row["total_score"] == total_under(rubric, row), row
        # the same day's values under the previous rubric: what the run computed before the edit
        assert (row["previous_rubric_version"], row["previous_rubric_hash"]) == ("v1", old["rubric_hash"])
        assert row["total_score_previous_rubric"] == old["total_score"], row
        assert row["health_status_previous_rubric"] == old["health_status"], row
        expected = (None if row["status_transition"] is None
                    else "rubric_change" if old["health_status"] == row["previous_health_status"]
                    else "customer_change")
        assert row["status_change_cause"] == expected, row
        causes[expected] += 1
    assert causes["rubric_change"] >= 1, "the edit moves statuses in the test world"


def test_a_status_the_rubric_changed_triggers_no_playbook_and_signals_still_do(rubric_edit):
    after = [r for r in rubric_edit["after_all"] if r["score_date"] == RUN_DATE]
    by_rubric = {r["company_id"] for r in after if r["status_change_cause"] == "rubric_change"}
    by_customer = {r["company_id"] for r in after if r["status_change_cause"] == "customer_change"}
    candidates = rubric_edit["candidates"]
    assert by_rubric and not [c for c in candidates if c["company_id"] in by_rubric
                              and c["trigger_type"] in ("status", "transition")]
    # status_change_slack (any transition, every audience) would hold for each of them; a customer's own change
    # still posts its line; the day's signals still fire
    slack = {c["company_id"] for c in candidates if c["playbook_key"] == "status_change_slack"}
    assert slack == by_customer
    with psycopg.connect(rubric_edit["warehouse"], row_factory=dict_row) as connection:
        signals = {(row["company_id"], row["signal_key"]) for row in connection.execute(
            "select company_id, signal_key from marts.fct_company_signals where as_of_date = %s", (RUN_DATE,))}
    signalled = {(c["company_id"], c["trigger_value"]) for c in candidates if c["trigger_type"] == "signal"}
    assert signalled and signalled <= signals


def test_the_run_names_the_rubric_change_with_what_it_moved(rubric_edit):
    before = rubric_edit["before"]
    after = {r["company_id"]: r for r in rubric_edit["after_all"] if r["score_date"] == RUN_DATE}
    scores = sum(after[c]["total_score"] != before[c]["total_score"] for c in after)
    moved = Counter(f"{before[c]['health_status']}→{after[c]['health_status']}" for c in after
                    if after[c]["health_status"] != before[c]["health_status"])
    assert scores and moved
    with psycopg.connect(rubric_edit["warehouse"]) as connection:
        change = rubric_change(connection, RUN_DATE)
        assert rubric_change(connection, RUN_DATE - timedelta(days=1)) is None
    assert change["companies"] == len(after)
    assert (change["previous_version"], change["current_version"]) == ("v1", "v2")
    transitions = ", ".join(f"{t} {n}" for t, n in sorted(moved.items(), key=lambda item: (-item[1], item[0])))
    assert format_rubric_change(change) == (
        f"rubric v1 → v2: {counted(scores, 'score')} changed, {counted(sum(moved.values()), 'status')}: {transitions}")
    japanese = format_rubric_change(change, "ja")
    statuses = sum(moved.values())
    assert japanese.startswith(f"ルーブリック変更 v1 → v2：スコア変更 {scores}社、ステータス変更 {statuses}社")
    assert all(f"{t} {n}社" in japanese for t, n in moved.items())


def test_the_digest_and_the_activation_summary_name_the_rubric_change(rubric_edit):
    from csops.activation.digest import digest_message, digest_of
    from csops.summary import activation_summary, format_activation_summary

    warehouse = rubric_edit["warehouse"]
    with psycopg.connect(warehouse, autocommit=True) as connection:
        change = rubric_change(connection, RUN_DATE)
        text = digest_message(digest_of(connection, RUN_DATE))["blocks"][1]["text"]["text"]
    assert change and f"*ルーブリック*: {format_rubric_change(change, 'ja')}" in text
    verdict = {"run_date": RUN_DATE.isoformat(), "decision": "passed", "reasons": [], "tripped": False}
    summary = format_activation_summary(activation_summary(warehouse, "rubric", RUN_DATE, verdict=verdict))
    assert f"{format_rubric_change(change)}: the rubric changed, not the customers" in summary



def test_the_next_day_keeps_the_new_rubric_and_its_history_survives_a_full_refresh(rubric_edit, dbt_target):
    warehouse = rubric_edit["warehouse"]
    next_day = RUN_DATE + timedelta(days=1)
    completed = dbt(warehouse, dbt_target, "run", "--select", "@path:models/intermediate/health", run_date=next_day)
    assert completed.returncode == 0, completed.stdout[-4000:]
    rows = mart_rows(warehouse, "score_date = %s", (next_day,))
    assert rows and {r["rubric_version"] for r in rows} == {"v2"}
    assert {r["previous_rubric_hash"] for r in rows} == {None}
    assert "rubric_change" not in {r["status_change_cause"] for r in rows}
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        assert rubric_change(connection, next_day) is None
        versions = connection.execute("select rubric_version, first_run_date from marts.health_rubric_versions "
                                      "order by rubric_version").fetchall()
    assert versions == [{"rubric_version": "v1", "first_run_date": RUN_DATE},
                        {"rubric_version": "v2", "first_run_date": RUN_DATE}]
    # a full refresh rescores the history with one rubric, and keeps every version it was ever scored with
    completed = dbt(warehouse, dbt_target, "run", "--full-refresh", "--select", "health_rubric_versions",
                    "fct_health_scores", run_date=next_day)
    assert completed.returncode == 0, completed.stdout[-4000:]
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        assert connection.execute("select rubric_version, first_run_date from marts.health_rubric_versions "
                                  "order by rubric_version").fetchall() == versions
    rebuilt = mart_rows(warehouse)
    assert {r["rubric_version"] for r in rebuilt} == {"v2"}
    assert {r["status_change_cause"] for r in rebuilt} <= {None, "customer_change"}


def test_rubric_diff_lists_the_companies_a_working_copy_edit_would_move(rubric_edit, project_copy, monkeypatch,
                                                                        capsys):
    warehouse = rubric_edit["warehouse"]
    health = project_copy / "seeds" / "health"
    # Not committed, not built: Green now needs 20 login days, and the label is v3.
    edit_csv(health / "health_thresholds.csv", lambda row: row.update(min_value="20") if (
        row["indicator_key"], row["score"]) == ("login_days", "3") else None)
    edit_csv(health / "health_rubric_version.csv", lambda row: row.update(rubric_version="v3"))
    proposal = Rubric(project_copy / "seeds")
    stored = mart_rows(warehouse)
    latest = max(r["score_date"] for r in stored)  # the diff reads the latest scored date
    after = [r for r in stored if r["score_date"] == latest]
    moves = {}
    for row in after:
        total = total_under(proposal, row)
        status = row["override_status"] or proposal.status(total)
        if total != row["total_score"] or status != row["health_status"]:
            moves[row["company_id"]] = (row, total, status)
    assert any(status != row["health_status"] for row, _total, status in moves.values())
    monkeypatch.setenv("CS_WAREHOUSE_URL", warehouse)
    monkeypatch.setenv("CS_NEXPRO_URL", warehouse)  # not used; a configured URL keeps the embedded server off
    cli.main(["rubric", "diff"])
    output = capsys.readouterr().out
    assert "Working-copy rubric v3 (" in output and "scored with, v2 (" in output, output
    assert f"on {latest:%Y-%m-%d} ({len(after)} companies)" in output, output
    statuses = Counter(f"{row['health_status']}→{status}" for row, _total, status in moves.values()
                       if status != row["health_status"])
    scores = sum(total != row["total_score"] for row, total, _status in moves.values())
    assert (f"rubric v2 → v3: {counted(scores, 'score')} changed, {counted(sum(statuses.values()), 'status')}: "
            in output)
    listed = {line.split()[0] for line in output.splitlines()[4:] if line.split()}
    assert listed == set(moves), output
    for company, (row, total, status) in moves.items():
        line = next(line for line in output.splitlines() if line.split() and line.split()[0] == company)
        assert f"{row['total_score']} → {total}" in line, line
        if status != row["health_status"]:
            assert f"{row['health_status']} → {status}" in line, line
    # nothing was built: the warehouse still holds v2
    assert mart_rows(warehouse) == stored
