"""What the run's `dbt.nodes_passed` task checks: each dbt node's latest result in the run, from the audit table
the on-run-end hook writes, whichever task ran it (the one build, or a model's task retrying it alone)."""

from __future__ import annotations

import psycopg

from csops.summary import failed_dbt_nodes

DDL = """
create schema ops;
create table ops.dbt_node_results (
    invocation_id text not null, airflow_run_id text, run_date date, unique_id text not null,
    resource_type text not null, node_name text not null, status text not null, failures integer,
    execution_time double precision, rows_affected bigint, message text,
    recorded_at timestamptz not null default current_timestamp, primary key (invocation_id, unique_id));
"""


def record(connection, invocation, run_id, unique_id, status, message=None, at="2026-11-21 06:40"):
    resource_type, _package, name = unique_id.split(".")
    connection.execute(
        "insert into ops.dbt_node_results (invocation_id, airflow_run_id, unique_id, resource_type, node_name, "
        "status, message, recorded_at) values (%s, %s, %s, %s, %s, %s, %s, %s)",
        (invocation, run_id, unique_id, resource_type, name, status, message, at))


def test_a_failed_test_of_no_model_counts_and_a_model_fixed_by_its_retry_does_not(warehouse_url):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute(DDL)
        # The build: a model failed, a test of no model (it checks a macro) failed, the rest passed.
        record(connection, "build", "run-1", "model.csops.fct_a", "error", "connection reset")
        record(connection, "build", "run-1", "test.csops.assert_macro_example", "fail", "Got 1 result")
        record(connection, "build", "run-1", "model.csops.fct_b", "success")
        record(connection, "build", "run-1", "source.csops.nexpro", "error", "stale")
        record(connection, "build", "run-1", "model.csops.fct_c", "skipped")
        # fct_a's task retried it alone, later, and it built.
        record(connection, "retry", "run-1", "model.csops.fct_a", "success", at="2026-11-21 06:50")
        # Another run's failure is not this run's.
        record(connection, "yesterday", "run-0", "model.csops.fct_b", "error", "old")

    assert failed_dbt_nodes(warehouse_url, "run-1") == [
        {"task": "dbt", "what": "test assert_macro_example", "error": "Got 1 result", "rows": [],
         "rows_at": "dbt_test__audit.assert_macro_example"}]
    assert failed_dbt_nodes(warehouse_url, "run-2") == []


def test_no_audit_table_yet_is_no_failure(warehouse_url):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute("drop schema if exists ops cascade")
    assert failed_dbt_nodes(warehouse_url, "run-1") == []
