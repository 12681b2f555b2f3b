"""The models a daily run builds incrementally write, for the dates they rewrite, exactly the rows a full build
computes for those dates: the usage mart (the last usage_recompute_days dates, read from the spine rows its
windows need), the day aggregates those windows read (the whole table), the health score's customer days,
indicator values and indicator scores (the run date), and the daily signal history (the run date), with
fct_company_signals reading the same signal_history_days either way."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from csops import settings
from csops.local_stack import dbt_environment
from tests.conftest import VENV_BIN
from tests.dbt.warehouse import RUN_DATE

NEXT_DAY = RUN_DATE + timedelta(days=1)
# dbt_project.yml's history vars: a full build for NEXT_DAY over one more day starts on the same first date
HISTORY_VARS = {"usage_history_days": 180, "health_history_days": 90, "signal_history_days": 180}
RECOMPUTE_DAYS = 7  # usage_recompute_days
# what is rewritten by whichever run writes a row, not part of its content
LINEAGE = {"computed_for_run_date", "as_of_date", "computed_at"}
# model: (its date column, the dates a daily run for NEXT_DAY rewrites)
REWRITTEN = {
    "marts.fct_tenant_daily_usage": ("usage_date", [NEXT_DAY - timedelta(days=n) for n in range(RECOMPUTE_DAYS)]),
    "intermediate.int_health_customer_days": ("score_date", [NEXT_DAY]),
    "intermediate.int_health_indicator_values": ("score_date", [NEXT_DAY]),
    "intermediate.int_health_indicator_scores": ("score_date", [NEXT_DAY]),
    "intermediate.int_company_signal_days": ("signal_date", [NEXT_DAY]),
}


def dbt_run(warehouse: str, target: Path, *arguments: str, variables: dict):
    project = settings.dbt_project_dir()
    return subprocess.run(
        [str(VENV_BIN / "dbt"), "run", *arguments, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--vars", json.dumps(variables, default=str)],
        env={**dbt_environment(warehouse), "PATH": "/usr/bin:/bin", "CS_AIRFLOW_RUN_ID": "dbt-test"},
        capture_output=True, text=True)


def table_rows(warehouse: str, relation: str, where: str = "true", params=()) -> list[dict]:
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        found = connection.execute(f"select * from {relation} where {where}", params).fetchall()
    rows = [{k: v for k, v in row.items() if k not in LINEAGE} for row in found]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def rewritten_rows(warehouse: str) -> dict[str, list[dict]]:
    return {relation: table_rows(warehouse, relation, f"{column} = any(%s)", (dates,))
            for relation, (column, dates) in REWRITTEN.items()}


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    return url


def test_a_daily_run_writes_the_rows_a_full_build_computes(warehouse, tmp_path):
    history_before = table_rows(warehouse, "intermediate.int_company_signal_days")
    daily = dbt_run(warehouse, tmp_path / "daily", variables={"run_date": NEXT_DAY.isoformat(), **HISTORY_VARS})
    assert daily.returncode == 0, daily.stdout[-4000:]
    incremental = rewritten_rows(warehouse)
    signals_incremental = table_rows(warehouse, "marts.fct_company_signals")
    for relation, rows in incremental.items():
        assert rows, f"{relation}: the daily run wrote no rows for {REWRITTEN[relation][1]}"
    history_after = table_rows(warehouse, "intermediate.int_company_signal_days")
    assert [row for row in history_after if row["signal_date"] != NEXT_DAY] == history_before, (
        "the daily run leaves the signal history's earlier dates as they were")

    # The day aggregates: rewritten for the last dates and the new spine rows, the day that left the spine
    # deleted, so the whole table equals a full build of it for the same day and history.
    aggregated = "intermediate.int_tenant_daily_activity_aggregated"
    days_incremental = table_rows(warehouse, aggregated)
    with psycopg.connect(warehouse) as connection:
        written = connection.execute(f"select count(distinct computed_at), count(*) from {aggregated}").fetchone()
    assert written[0] == 2, "the daily run rewrote some rows of the day aggregates and kept the others"
    spine = dbt_run(warehouse, tmp_path / "spine", "--full-refresh", "--select",
                    "int_tenant_days_spined", "int_tenant_daily_activity_aggregated",
                    variables={"run_date": NEXT_DAY.isoformat(), **HISTORY_VARS})
    assert spine.returncode == 0, spine.stdout[-4000:]
    assert table_rows(warehouse, aggregated) == days_incremental, f"{aggregated} differs from a full build"

    # A full build for the same day over one more day of history: the same first dates as the built warehouse.
    longer = {key: days + 1 for key, days in HISTORY_VARS.items()}
    full = dbt_run(warehouse, tmp_path / "full", "--full-refresh",
                   variables={"run_date": NEXT_DAY.isoformat(), **longer})
    assert full.returncode == 0, full.stdout[-4000:]
    rebuilt = rewritten_rows(warehouse)
    for relation in REWRITTEN:
        assert incremental[relation] == rebuilt[relation], f"{relation} differs from a full build"
    # fct_company_signals reads the last signal_history_days of the history either way
    full_signals = dbt_run(warehouse, tmp_path / "signals", "--select", "fct_company_signals",
                           variables={"run_date": NEXT_DAY.isoformat(), **HISTORY_VARS})
    assert full_signals.returncode == 0, full_signals.stdout[-4000:]
    assert table_rows(warehouse, "marts.fct_company_signals") == signals_incremental
    # the world ends on RUN_DATE: the next day's storage is the reading carried forward
    assert any(row["usage_date"] == NEXT_DAY and row["latest_storage_bytes"] is not None
               for row in incremental["marts.fct_tenant_daily_usage"])
