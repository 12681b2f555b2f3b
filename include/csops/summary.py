"""What one pipeline run did, read back from the warehouse's ops tables."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

MODEL_TYPES = ("model", "seed", "snapshot")
TEST_TYPES = ("test", "unit_test")


def latest_run_id(warehouse_url: str) -> str | None:
    with psycopg.connect(warehouse_url) as connection:
        if connection.execute("select to_regclass('ops.extract_runs')").fetchone()[0] is None:
            return None
        row = connection.execute("select run_id from ops.extract_runs order by started_at desc limit 1").fetchone()
    return row[0] if row else None


def run_summary(warehouse_url: str, run_id: str) -> dict:
    with psycopg.connect(warehouse_url, row_factory=dict_row) as connection:
        loads = connection.execute(
            """
            select source_name, table_name, load_mode, status, rows_read, rows_inserted, rows_updated,
                rows_quarantined, added_columns, duration_seconds, error
            from ops.extract_runs where run_id = %s order by source_name, table_name
            """, (run_id,)).fetchall()
        dbt = []
        if connection.execute("select to_regclass('ops.dbt_node_results')").fetchone()["to_regclass"]:
            dbt = connection.execute(
                """
                select distinct on (unique_id) resource_type, node_name, status
                from ops.dbt_node_results where airflow_run_id = %s
                order by unique_id, recorded_at desc
                """, (run_id,)).fetchall()
    models = [node for node in dbt if node["resource_type"] in MODEL_TYPES]
    tests = [node for node in dbt if node["resource_type"] in TEST_TYPES]
    return {
        "run_id": run_id,
        "loads": loads,
        "rows_quarantined": sum(load["rows_quarantined"] for load in loads),
        "files_rejected": [load["source_name"].removeprefix("csv:") for load in loads if load["status"] == "rejected"],
        "models_succeeded": sum(node["status"] == "success" for node in models),
        "models_failed": [node["node_name"] for node in models if node["status"] != "success"],
        "tests_passed": sum(node["status"] == "pass" for node in tests),
        "tests_warned": [node["node_name"] for node in tests if node["status"] == "warn"],
        "tests_failed": [node["node_name"] for node in tests if node["status"] not in ("pass", "warn")],
    }


def format_summary(summary: dict) -> str:
    lines = [f"Run {summary['run_id']}", "", "Rows loaded (read / inserted / updated / quarantined):"]
    for load in summary["loads"]:
        note = f"  [{load['status']}: {load['error']}]" if load["status"] != "succeeded" else ""
        if load["added_columns"]:
            note += f"  new column(s): {', '.join(load['added_columns'])}"
        lines.append(f"  {load['source_name']:<14} {load['table_name']:<22} {load['load_mode']:<11} "
                     f"{load['rows_read']:>10,} {load['rows_inserted']:>10,} {load['rows_updated']:>9,} "
                     f"{load['rows_quarantined']:>6,}{note}")
    lines.append(f"Quarantined rows: {summary['rows_quarantined']:,}"
                 + (" (see ops.quarantine)" if summary["rows_quarantined"] else ""))
    if summary["files_rejected"]:
        lines.append(f"Rejected CSV files (nothing loaded from them): {', '.join(summary['files_rejected'])}")
    lines.append(f"dbt: {summary['models_succeeded']} models/seeds built, {summary['tests_passed']} tests passed"
                 + (f", {len(summary['tests_warned'])} warned" if summary["tests_warned"] else ""))
    if summary["models_failed"]:
        lines.append(f"  models not built: {', '.join(summary['models_failed'])}")
    if summary["tests_failed"]:
        lines.append(f"  tests failed: {', '.join(summary['tests_failed'])}")
    return "\n".join(lines)
