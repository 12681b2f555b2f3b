"""`dbt build` on real data: the test world's Nexpro database and Salesforce org, extracted by the real
loaders (Salesforce over HTTPS with simple-salesforce), then every model and test."""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from csops import settings
from csops.extract.engine import load_table
from csops.extract.nexpro_tables import NEXPRO_TABLES, RAW_SCHEMA, SOURCE_NAME
from csops.extract.salesforce import CountingSession, SalesforceApi, connect_with_hook, load_object
from csops.extract.salesforce_objects import SALESFORCE_OBJECTS
from csops.local_stack import dbt_environment
from csops.sandbox.salesforce.seed import seed_org, seeded_identity_issues
from csops.sandbox.world import plan_companies
from tests.conftest import TEST_WORLD, VENV_BIN, create_database
from tests.salesforce_fixtures import sandbox_beside

RUN_DATE = TEST_WORLD.end_date


def dbt(warehouse: str, target: Path, *arguments: str, run_date: date = RUN_DATE, run_id: str = "dbt-test"):
    project = settings.dbt_project_dir()
    return subprocess.run(
        [str(VENV_BIN / "dbt"), *arguments, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--vars", json.dumps({"run_date": run_date.isoformat()})],
        env={**dbt_environment(warehouse), "PATH": "/usr/bin:/bin", "CS_AIRFLOW_RUN_ID": run_id},
        capture_output=True, text=True)


@pytest.fixture(scope="module")
def dbt_target(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt-target")


def load_salesforce(org, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extract every object of `org` through the Airflow connection, as the DAG does."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(org.airflow_connection()))
    api = SalesforceApi(connect_with_hook("salesforce_default"), CountingSession(reserve_share=0.2))
    for object_name in SALESFORCE_OBJECTS:
        load_object(api, warehouse, object_name, run_id="dbt-test")


@pytest.fixture(scope="module")
def built_warehouse(postgres, nexpro_template, dbt_target, salesforce_sandbox, tmp_path_factory):
    nexpro = create_database(postgres, "nexpro_dbt", template=nexpro_template)
    warehouse = create_database(postgres, "warehouse_dbt")
    for table in NEXPRO_TABLES:
        load_table(nexpro, warehouse, table, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA, run_id="dbt-test")
    # An org of its own: other tests change the session's org.
    with pytest.MonkeyPatch.context() as patch, sandbox_beside(
            salesforce_sandbox, create_database(postgres, "salesforce_dbt"), tmp_path_factory.mktemp("org")) as org:
        seed_org(org.database_url, TEST_WORLD, progress=lambda _message: None)
        load_salesforce(org, warehouse, patch)
    completed = dbt(warehouse, dbt_target, "build")
    results = json.loads((dbt_target / "run_results.json").read_text())["results"] \
        if completed.returncode == 0 else None
    return warehouse, completed, results


def test_build_is_green_with_data_and_unit_tests(built_warehouse):
    _warehouse, completed, results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    kinds = {result["unique_id"].split(".")[0] for result in results}
    assert {"model", "test", "unit_test", "seed"} <= kinds
    assert all(result["status"] in ("success", "pass") for result in results), [
        (result["unique_id"], result["status"]) for result in results if result["status"] not in ("success", "pass")]


def test_results_are_recorded_for_the_run_summary(built_warehouse):
    warehouse, completed, results = built_warehouse
    assert completed.returncode == 0
    with psycopg.connect(warehouse) as connection:
        recorded = connection.execute("select count(*) from ops.dbt_node_results "
                                      "where airflow_run_id = 'dbt-test'").fetchone()[0]
    nodes = [result for result in results if not result["unique_id"].startswith("operation.")]  # the hook itself
    assert recorded == len(nodes)


def test_usage_mart_is_anchored_on_the_run_date_and_separates_personas(built_warehouse):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    with psycopg.connect(warehouse) as connection:
        assert connection.execute("select max(usage_date) from marts.fct_tenant_daily_usage").fetchone()[0] == RUN_DATE
        rows = connection.execute(
            "select tenant_id, login_days_30d, webinars_held_30d, feature_depth_tier_30d, "
            "webinar_limit_utilisation_30d from marts.fct_tenant_daily_usage where usage_date = %s",
            (RUN_DATE,)).fetchall()
        source_logins = connection.execute(
            "select tenant_id, count(distinct (logged_in_at at time zone 'Asia/Tokyo')::date) "
            "from raw_nexpro.login_events where (logged_in_at at time zone 'Asia/Tokyo')::date between %s and %s "
            "group by 1", (RUN_DATE - timedelta(days=29), RUN_DATE)).fetchall()
    persona = {company.nexpro_tenant_id: company.persona for company in plan_companies(TEST_WORLD)}
    by_tenant = {row[0]: row for row in rows}
    assert len(by_tenant) == TEST_WORLD.accounts
    for tenant_id, login_days in source_logins:
        assert by_tenant[tenant_id][1] == login_days, "login_days_30d counts distinct Tokyo dates in [d-29, d]"

    def mean(column, name):
        values = [row[column] for tenant, row in by_tenant.items() if persona[tenant] == name]
        return sum(values) / len(values)

    assert mean(2, "thriving") > mean(2, "churn_bound")
    assert mean(1, "thriving") > mean(1, "onboarding_stalled")
    assert mean(4, "expanding") > mean(4, "steady")
    assert {row[3] for tenant, row in by_tenant.items() if persona[tenant] == "thriving"} == {"advanced"}


def test_identity_and_data_quality_show_exactly_the_seeded_imperfections(built_warehouse):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    seeded = seeded_identity_issues(TEST_WORLD)
    with psycopg.connect(warehouse) as connection:
        issues = {(issue_type, record_id) for issue_type, record_id in connection.execute(
            "select issue_type, record_id from marts.dq_identity_issues").fetchall()}
        companies = connection.execute(
            "select company_id, account_id, tenant_id, match_status from intermediate.int_companies_identified"
        ).fetchall()
        suggestions = set(connection.execute(
            "select record_id, related_record_id from marts.dq_identity_issues "
            "where issue_type = 'account_without_tenant_key'").fetchall())
    without_key = seeded["accounts_without_tenant_id"]
    expected = {
        *(("account_without_tenant_key", account["account_id"]) for account in without_key),
        ("duplicate_tenant_key", seeded["duplicate_tenant"]["duplicate_account_id"]),
        ("tenant_key_not_found", seeded["dangling_tenant"]["account_id"]),
        ("tenant_without_account", str(seeded["company_without_account"]["tenant_id"])),
        # An account without its key leaves its tenant unclaimed too (the mart suggests the pair by name).
        *(("tenant_without_account", str(account["tenant_id"])) for account in without_key),
        ("account_without_board_key", seeded["account_without_board_client_id"]["account_id"]),
    }
    assert issues == expected
    assert suggestions == {(account["account_id"], str(account["tenant_id"])) for account in without_key}
    by_status = {}
    for _company_id, account_id, tenant_id, status in companies:
        by_status.setdefault(status, set()).add(account_id if status == "salesforce_only" else tenant_id)
    assert by_status["salesforce_only"] == ({account["account_id"] for account in without_key}
                                           | {seeded["dangling_tenant"]["account_id"]})
    assert by_status["nexpro_only"] == ({seeded["company_without_account"]["tenant_id"]}
                                        | {account["tenant_id"] for account in without_key})
    # Every other tenant is one matched company: the duplicate account does not make a second one.
    assert len(by_status["matched"]) == TEST_WORLD.accounts - len(by_status["nexpro_only"])


def test_source_freshness_is_the_last_successful_load(built_warehouse, dbt_target):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    fresh = dbt(warehouse, dbt_target, "source", "freshness", run_id="fresh")
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    with psycopg.connect(warehouse, autocommit=True) as connection:
        # users was loaded three days ago and never since, though nothing in it changed more recently.
        connection.execute("update ops.extract_runs set finished_at = finished_at - interval '3 days' "
                           "where table_name = 'users'")
    stale = dbt(warehouse, dbt_target, "source", "freshness", run_id="stale")
    assert stale.returncode != 0, "a source past error_after fails the freshness check"
    with psycopg.connect(warehouse) as connection:
        statuses = dict(connection.execute(
            "select airflow_run_id || ':' || node_name, status from ops.dbt_node_results "
            "where resource_type = 'source'").fetchall())
    assert statuses["fresh:users"] == "pass" and statuses["fresh:login_events"] == "pass"
    assert statuses["stale:users"] == "error" and statuses["stale:login_events"] == "pass"


def test_rerunning_an_older_date_rebuilds_it_and_leaves_later_dates_alone(built_warehouse, dbt_target):
    """Runs last in this module: it changes the warehouse."""
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    older = RUN_DATE - timedelta(days=7)
    mart = "select * from marts.fct_tenant_daily_usage where usage_date = %s order by tenant_id"
    with psycopg.connect(warehouse, autocommit=True) as connection:
        latest_before = connection.execute(mart, (RUN_DATE,)).fetchall()
        count_before = connection.execute("select count(*) from marts.fct_tenant_daily_usage").fetchone()
        logins_before = connection.execute("select sum(login_days_30d) from marts.fct_tenant_daily_usage "
                                           "where usage_date = %s", (older,)).fetchone()[0]
        # The source deleted every login of the older date: the loader flags them, staging drops them.
        connection.execute("update raw_nexpro.login_events set _deleted_at = now() "
                           "where (logged_in_at at time zone 'Asia/Tokyo')::date = %s", (older,))

    rerun = dbt(warehouse, dbt_target, "run", "--select", "+fct_tenant_daily_usage", run_date=older)

    assert rerun.returncode == 0, rerun.stdout[-3000:]
    with psycopg.connect(warehouse) as connection:
        assert connection.execute(mart, (RUN_DATE,)).fetchall() == latest_before, "later dates stay as they were"
        assert connection.execute("select count(*) from marts.fct_tenant_daily_usage").fetchone() == count_before
        older_rows = connection.execute(
            "select bool_or(had_login), sum(login_days_30d), min(computed_for_run_date) "
            "from marts.fct_tenant_daily_usage where usage_date = %s", (older,)).fetchone()
    assert older_rows[0] is False, "the older date was rebuilt without its deleted logins"
    assert older_rows[1] < logins_before
    assert older_rows[2] == older
