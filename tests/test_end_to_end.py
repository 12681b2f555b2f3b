"""`csops run` (what `make run` calls) end to end on a small world: a real Airflow DAG run, twice.

The first run generates the sandbox, loads everything in full and builds the marts; the second reuses
the world, loads incrementally and must leave the marts exactly as they were.
"""

from __future__ import annotations

import json
import os
import subprocess

import psycopg
import pytest
from psycopg.rows import dict_row

from csops.local_postgres import LocalPostgres
from csops.sandbox.board.server import BoardSandbox
from csops.sandbox.mail.server import MailCatcher
from csops.sandbox.salesforce.server import SalesforceSandbox
from csops.sandbox.slack.server import SlackSink
from tests.conftest import TEST_WORLD, VENV_BIN, free_port

RUN_DATE = TEST_WORLD.end_date.isoformat()


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def environment(local_dir):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("AIRFLOW", "CS_", "REQUESTS_CA_BUNDLE"))}
    environment.update(CS_LOCAL_DIR=str(local_dir), CS_LOCAL_PG_PORT=str(free_port()),
                       CS_SALESFORCE_PORT=str(free_port()), CS_SALESFORCE_PROXY_PORT=str(free_port()),
                       CS_BOARD_PORT=str(free_port()), CS_MAIL_CATCHER_PORT=str(free_port()),
                       CS_SLACK_SINK_PORT=str(free_port()))
    return environment


def csops_run(environment, expect_success=True):
    command = [str(VENV_BIN / "csops"), "run", "--accounts",
               str(TEST_WORLD.accounts), "--days", str(TEST_WORLD.days), "--seed", str(TEST_WORLD.seed),
               "--date", RUN_DATE]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
    assert (completed.returncode == 0) == expect_success, completed.stdout[-5000:] + completed.stderr[-5000:]
    return completed.stdout + completed.stderr


def mart_rows(server):
    """The marts' rows, without `computed_at` (when the run that wrote a row started: lineage, not content)."""
    with psycopg.connect(server.url("warehouse"), row_factory=dict_row) as connection:
        return {mart: [{column: value for column, value in row.items() if column != "computed_at"}
                       for row in connection.execute(f"select * from marts.{mart} order by 1, 2")]
                for mart in ("fct_tenant_daily_usage", "fct_mrr_company_monthly", "fct_revenue_monthly",
                             "fct_health_scores", "fct_company_signals", "fct_kpi_monthly", "dash_customer_360")}


@pytest.fixture(scope="module")
def first_run(environment):
    return csops_run(environment)


def test_first_run_loads_builds_and_summarises(first_run, environment, local_dir):
    assert "Nexpro sandbox generated" in first_run
    assert "Rows loaded" in first_run and "Quarantined rows: 0" in first_run
    assert "salesforce account" in first_run and "Salesforce API calls:" in first_run
    assert "Identity issues (marts.dq_identity_issues): " in first_run
    assert "Revenue, 2026-10 (marts.fct_revenue_monthly): MRR ¥" in first_run, \
        "the summary reports the last closed month before the run date"
    assert f"Health, {RUN_DATE} (marts.fct_health_scores): " in first_run and "status changes that day:" in first_run
    site = local_dir / "dbt-docs"
    assert (site / "index.html").is_file(), "the dbt docs site is published for the Airflow UI"
    catalog = json.loads((site / "catalog.json").read_text())
    assert catalog["nodes"]["model.csops.fct_health_scores"]["metadata"]["schema"] == "marts", "with the tables"
    assert len(json.loads((site / "manifest.json").read_text())["exposures"]) == 4, "and the four dashboards"
    assert "tests passed" in first_run
    activation = first_run[first_run.index(f"\nActivation {RUN_DATE} "):]
    assert "Killswitch: inputs sound" in activation and "Written back to Salesforce: " in activation
    assert "Salesforce tasks " in activation and " created" in activation and "Slack digest: sent" in activation
    assert "make warehouse" in first_run, "the summary says how to open the marts"
    server = LocalPostgres(local_dir / "postgres", int(environment["CS_LOCAL_PG_PORT"]))
    assert not server.is_running(), "csops run stops the server it started"
    assert not SalesforceSandbox(local_dir / "salesforce", "", 0, 0).is_running(), "and the Salesforce sandbox"
    assert not BoardSandbox(local_dir / "board", "", 0).is_running(), "and the board sandbox"
    assert (local_dir / "mail" / "credentials.json").exists(), "the mail catcher ran"
    assert not MailCatcher(local_dir / "mail").is_running(), "and was stopped"
    assert not SlackSink(local_dir / "slack").is_running(), "and the Slack sink"
    server.start()
    try:
        with psycopg.connect(server.url("warehouse")) as connection:
            loads = connection.execute("select source_name, load_mode, status from ops.extract_runs").fetchall()
            assert len(loads) == 11 + 12 + 3 and all(mode == "full" and status == "succeeded"
                                                     for _, mode, status in loads)
            assert sorted({source for source, _, _ in loads}) == ["board", "nexpro", "salesforce"]
            # an exposure (a dashboard) is reported by dbt build as no-op: there is nothing to build
            failed = connection.execute("select node_name, status from ops.dbt_node_results "
                                        "where status not in ('success', 'pass') "
                                        "and not (resource_type = 'exposure' and status = 'no-op')").fetchall()
            assert failed == []
            latest = connection.execute("select max(usage_date), count(distinct tenant_id) "
                                        "from marts.fct_tenant_daily_usage").fetchone()
            assert latest[0].isoformat() == RUN_DATE, "the mart is anchored on the run date, not on now()"
            assert latest[1] == TEST_WORLD.accounts
            run_dates = connection.execute("select distinct run_date from ops.dbt_node_results").fetchall()
            assert [(day.isoformat(),) for (day,) in run_dates] == [(RUN_DATE,)], \
                "the DAG run csops started (06:30 Tokyo on D + 1) computed D"
            freshness = connection.execute("select count(*) filter (where status = 'pass'), count(*) "
                                           "from ops.dbt_node_results where resource_type = 'source'").fetchone()
            assert freshness == (27, 27), "source_freshness ran as part of the DAG"
            firings = dict(connection.execute("select outcome, count(*) from ops.playbook_firings "
                                              "group by outcome").fetchall())
            assert firings.get("created") and firings.get("sent") and not firings.get("failed"), \
                "cs_activation ran after cs_daily: tasks created, e-mails and Slack sent"
            builds = connection.execute("select count(distinct invocation_id), count(*) from ops.dbt_node_results "
                                        "where resource_type <> 'source'").fetchone()
            assert builds[0] == 1 and builds[1] > 100, "one dbt build built every model and ran every test"
    finally:
        server.stop()


def test_the_run_prints_a_short_account_and_keeps_the_full_logs_in_a_file(first_run, local_dir):
    assert first_run.count("Rows loaded") == 1, "the summary is printed once"
    assert "▸ extract" in first_run and "✓ extract: 27 tasks" in first_run
    assert "✓ dbt:" in first_run and "✓ source_freshness: 1 task" in first_run
    assert first_run.count("▸ dbt") == 1, "dbt is one stage, wherever source_freshness ran"
    progress = " … "  # a running stage's line every 15 s: their number follows the machine's speed
    assert len([line for line in first_run.splitlines() if progress not in line]) < 100, "no task logs on the console"
    [log_file] = (local_dir / "logs").glob("run-*.log")
    assert str(log_file) in first_run, "the console names the log file"
    full = log_file.read_text()
    assert "[DAG TEST] starting task_id=dbt.dbt_producer_watcher " in full, "the one dbt build"
    assert "[DAG TEST] starting task_id=dbt.fct_tenant_daily_usage.run" in full, "the mart's task"
    assert "[DAG TEST] starting task_id=dbt.fct_tenant_daily_usage.test" in full, "its tests' task"
    assert "URIs validation rules changed" not in full and "inactive AssetModel" not in full, \
        "Assets are declared the Airflow 3 way, so Cosmos's URI warnings are gone"


def test_second_run_reuses_everything_and_changes_nothing(first_run, environment, local_dir):
    server = LocalPostgres(local_dir / "postgres", int(environment["CS_LOCAL_PG_PORT"]))
    server.start()
    before = mart_rows(server)
    server.stop()

    second = csops_run(environment)

    assert "reusing it" in second
    assert "airflow db migrate" not in second, "the Airflow metadata DB is reused"
    assert "Playbooks: nothing new fired" in second, "re-running the date fires nothing twice"
    assert "Written back to Salesforce: 0 rows accepted, 0 rejected, of 0 changed" in second
    server.start()
    try:
        with psycopg.connect(server.url("warehouse")) as connection:
            loads = connection.execute(
                "select source_name, table_name, load_mode, rows_read, rows_inserted + rows_updated "
                "from ops.extract_runs "
                "where run_id = (select run_id from ops.extract_runs order by started_at desc limit 1)").fetchall()
        # Only what the first run's activation wrote to Salesforce comes back: the write-back's objects and
        # the playbooks' Tasks and Opportunity drafts.
        written = {"account", "task", "opportunity", "health_score__c", "usage__c", "revenue__c"}
        assert sum(changed for source, table, *_, changed in loads if (source, table) not in
                   {("salesforce", name) for name in written}) == 0
        # Every table with rows loads incrementally; a Salesforce object that had no record at the first load
        # (the ones the write-back fills) had no watermark yet, so it is read in full.
        assert {(source, table) for source, table, mode, *_ in loads if mode != "incremental"} == {
            ("salesforce", name) for name in ("health_score__c", "usage__c", "revenue__c")}
        assert len(loads) == 26
        assert mart_rows(server) == before
    finally:
        server.stop()


def test_a_failing_dbt_test_fails_the_run_names_the_test_and_holds_back_what_depends_on_it(
        first_run, environment, local_dir):
    """Runs after the second run: it gives the source a plan without its webinar limit, which staging tests."""
    server = LocalPostgres(local_dir / "postgres", int(environment["CS_LOCAL_PG_PORT"]))
    server.start()
    with psycopg.connect(server.url("nexpro"), autocommit=True) as connection:
        connection.execute("alter table plans alter column webinars_per_month_limit drop not null")
        connection.execute("update plans set webinars_per_month_limit = null "
                           "where plan_id = (select min(plan_id) from plans)")
    server.stop()

    output = csops_run(environment, expect_success=False)

    assert "✗ dbt.stg_nexpro__plans.test failed" in output, "the failing test's task, as it fails"
    summary = output[output.rindex("\nRun "):]
    failed = summary[summary.index("FAILED ("):summary.index("Rows loaded")]
    assert "dbt [test not_null_stg_nexpro__plans_webinars_per_month_limit]: Got 1 result" in failed
    assert "Not run because something upstream failed" in summary
    models_not_built = next(line for line in summary.splitlines() if line.startswith("  models not built: "))
    assert "fct_tenant_daily_usage" in models_not_built, "dbt build skipped what depends on the failing test"
    assert "  tests not run, their models not built: " in summary
    assert "stg_nexpro__plans" not in models_not_built
    server.start()
    try:
        with psycopg.connect(server.url("warehouse")) as connection:
            run_id = connection.execute("select airflow_run_id from ops.dbt_node_results "
                                        "order by recorded_at desc limit 1").fetchone()[0]
            builds = connection.execute("select count(distinct invocation_id) from ops.dbt_node_results "
                                        "where airflow_run_id = %s and resource_type <> 'source'",
                                        (run_id,)).fetchone()[0]
        assert builds == 1, "the build's retry handed its results over; it did not build again"
    finally:
        server.stop()


def test_a_failed_load_still_gets_a_summary_that_leads_with_it(first_run, environment, local_dir):
    """Runs after the others: it breaks the sandbox's source on purpose."""
    server = LocalPostgres(local_dir / "postgres", int(environment["CS_LOCAL_PG_PORT"]))
    server.start()
    with psycopg.connect(server.url("nexpro"), autocommit=True) as connection:
        connection.execute("alter table webinars rename to webinars_archived")
    server.stop()

    output = csops_run(environment, expect_success=False)

    summary = output[output.rindex("\nRun "):]
    failed = summary.index("FAILED (1):")
    assert "nexpro_extract.load_table [webinars]: ExtractError: source table public.webinars does not exist" \
        in summary
    assert failed < summary.index("Rows loaded"), "what failed comes first"
    assert "Not run because something upstream failed" in summary
    assert "✗ nexpro_extract.load_table[" in output and "The run failed" in output
