"""Data tests check the rows written since they last passed (dbt_project/macros/data_tests_new_rows.sql): a
row loaded or computed before a test's last pass is not read again, a new row is, a failing test keeps
reading everything new since its last pass, and `test_all_rows` reads every row."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.dbt.warehouse import dbt

NOT_NULL_TENANT = "not_null_stg_nexpro__login_events_tenant_id"
NOT_NULL_SCORE = "not_null_int_health_indicator_scores_score"


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    return url


def run_test(warehouse: str, target: Path, name: str, **variables) -> dict:
    completed = dbt(warehouse, target, "test", "--select", name, variables=variables)
    [result] = [r for r in json.loads((target / "run_results.json").read_text())["results"]
                if r["unique_id"].startswith(f"test.csops.{name}.")]
    assert completed.returncode == (0 if result["status"] == "pass" else 1), completed.stdout[-3000:]
    return {"status": result["status"], "failures": result["failures"]}


def add_login_without_tenant(warehouse: str, login_event_id: int, loaded_at: str | None = None) -> None:
    with psycopg.connect(warehouse) as connection:
        connection.execute(
            "insert into raw_nexpro.login_events (login_event_id, user_id, tenant_id, logged_in_at, _loaded_at)"
            " values (%s, 1, null, now(), coalesce(%s::timestamptz, now()))", (login_event_id, loaded_at))


def test_a_staging_test_reads_the_rows_loaded_since_it_last_passed(warehouse, tmp_path):
    # the build passed every test; a bad row loaded before that pass was checked then, so it is not read again
    add_login_without_tenant(warehouse, 900_000_001, loaded_at="2000-01-01")
    assert run_test(warehouse, tmp_path / "a", NOT_NULL_TENANT) == {"status": "pass", "failures": 0}
    assert run_test(warehouse, tmp_path / "b", NOT_NULL_TENANT, test_all_rows=True) == {
        "status": "fail", "failures": 1}

    # a bad row loaded now fails the test, and it keeps failing (it still reads everything new since its last
    # pass) until the row is fixed
    add_login_without_tenant(warehouse, 900_000_002)
    assert run_test(warehouse, tmp_path / "c", NOT_NULL_TENANT) == {"status": "fail", "failures": 1}
    assert run_test(warehouse, tmp_path / "d", NOT_NULL_TENANT) == {"status": "fail", "failures": 1}
    with psycopg.connect(warehouse) as connection:
        connection.execute("update raw_nexpro.login_events set tenant_id = 1, _loaded_at = now()"
                           " where login_event_id = 900_000_002")
    assert run_test(warehouse, tmp_path / "e", NOT_NULL_TENANT) == {"status": "pass", "failures": 0}


def test_a_test_on_an_incremental_model_reads_the_rows_computed_since_it_last_passed(warehouse, tmp_path):
    with psycopg.connect(warehouse) as connection:
        connection.execute("update intermediate.int_health_indicator_scores set score = null"
                           " where ctid in (select ctid from intermediate.int_health_indicator_scores limit 2)")
    # rows computed by the build, before the test passed in it
    assert run_test(warehouse, tmp_path / "a", NOT_NULL_SCORE) == {"status": "pass", "failures": 0}
    with psycopg.connect(warehouse) as connection:
        connection.execute("update intermediate.int_health_indicator_scores set computed_at = now()"
                           " where score is null")
    assert run_test(warehouse, tmp_path / "b", NOT_NULL_SCORE) == {"status": "fail", "failures": 2}
