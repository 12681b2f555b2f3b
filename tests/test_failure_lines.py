"""What the run summary says when something breaks, as a new user meets it: a wrong Salesforce password, a rubric
whose weights do not add up, a rejected CSV file. Each line names the object, table or test and the first line of
the error in its own words, with the fix."""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import pendulum
import psycopg
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from csops import settings
from csops.extract.engine import load_table
from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME, RAW_SCHEMA, SOURCE_NAME
from csops.extract.salesforce_objects import SALESFORCE_OBJECTS
from csops.summary import format_summary, run_summary
from tests.conftest import REPO_ROOT
from tests.dbt.warehouse import dbt

LOGIN_FIX = "check the username, password and security token of the salesforce_default connection"


@pytest.fixture(scope="module")
def cs_daily():
    """The DAG as Airflow loads it (its dbt tasks come from the manifest `make install` and `csops run` make)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "cs_daily.py"))
    assert bag.import_errors == {}
    return bag.dags["cs_daily"]


def run_task(dag, task_id: str, run_id: str, *arguments):
    """Run one of cs_daily's Python tasks as its worker would, with the context it reads."""
    task = dag.get_task(task_id)
    run_after = pendulum.datetime(2026, 11, 21, 6, 30, tz=settings.BUSINESS_TIMEZONE)
    context = {"run_id": run_id, "params": {"overlap_minutes": 60, "full_refresh": [], "reconcile_board": False},
               "dag_run": SimpleNamespace(logical_date=run_after, run_after=run_after)}
    callable_ = task.python_callable
    original = callable_.__globals__["get_current_context"]
    callable_.__globals__["get_current_context"] = lambda: context
    try:
        return callable_(*arguments)
    finally:
        callable_.__globals__["get_current_context"] = original


def failed_section(text: str) -> str:
    return text[text.index("FAILED ("):text.index("Rows loaded")]


def test_a_wrong_salesforce_password_names_each_object_and_the_fix(cs_daily, salesforce_sandbox, warehouse_url,
                                                                   monkeypatch):
    connection = {**salesforce_sandbox.airflow_connection(), "password": "not-the-password"}
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_CONN_CS_WAREHOUSE", warehouse_url)
    objects = list(SALESFORCE_OBJECTS)
    for object_name in ("Account", "Contact"):
        with pytest.raises(Exception) as raised:  # the summary below checks its text
            run_task(cs_daily, "salesforce_extract.load_object", "run-login", object_name)
        assert "{content}" not in str(raised.value), "the error's own text, not simple-salesforce's template"
    # Airflow names a mapped task instance <task>_<map index>; Task's failed without reaching the warehouse.
    states = {f"salesforce_extract.load_object_{objects.index(name)}": "failed" for name in ("Account", "Contact")}
    states[f"salesforce_extract.load_object_{objects.index('Task')}"] = "failed"

    failed = failed_section(format_summary(run_summary(warehouse_url, "run-login", task_states=states)))

    assert ("  salesforce_extract.load_object [Account]: INVALID_LOGIN: Invalid username, password, security token; "
            f"or user locked out — {LOGIN_FIX}\n") in failed
    assert ("  salesforce_extract.load_object [Contact]: INVALID_LOGIN: Invalid username, password, security token; "
            f"or user locked out — {LOGIN_FIX}\n") in failed
    assert ("  salesforce_extract.load_object [Task]: the task failed before it recorded anything; its log has the "
            "error\n") in failed
    assert "load_object_" not in failed
    assert failed.startswith("FAILED (3):")
    with psycopg.connect(warehouse_url) as warehouse:
        assert warehouse.execute("select table_name, status from ops.extract_runs where run_id = 'run-login' "
                                 "order by 1").fetchall() == [("account", "failed"), ("contact", "failed")]


def edit_csv(path, change) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    for row in rows:
        change(row)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_a_failed_rubric_test_prints_its_own_explanation_and_no_other_seed_fails(warehouse_url, tmp_path,
                                                                                monkeypatch):
    project = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    edit_csv(project / "seeds" / "health" / "health_indicators.csv",
             lambda row: row.update(weight="0.25") if row["indicator_key"] == "renewal" else None)
    monkeypatch.setenv("CS_DBT_PROJECT_DIR", str(project))

    # every seed and the tests that read seeds alone, as cs_daily's build runs them first
    completed = dbt(warehouse_url, tmp_path / "target", "build", "--select", "resource_type:seed",
                    "--indirect-selection", "cautious", run_id="run-rubric")
    assert completed.returncode != 0

    summary = run_summary(warehouse_url, "run-rubric")
    text = format_summary(summary)
    failed = failed_section(text)
    assert "  dbt [test assert_health_weights_sum_to_one]: Got 8 results, configured to fail if != 0\n" in failed
    assert "    its first rows (dbt_test__audit.assert_health_weights_sum_to_one has them all):\n" in failed
    assert ("    - problem: health_indicators.csv: the weights add up to 1.2000, not 1; change weights (this row has "
            in failed)
    assert summary["tests_failed"] == ["assert_health_weights_sum_to_one"]
    assert summary["models_failed"] == [], "every seed loaded"
    assert summary["tests_skipped"] == 0, "the tests of the other seeds ran (and passed)"
    with psycopg.connect(warehouse_url) as warehouse:
        stored = warehouse.execute("select count(*) from dbt_test__audit.assert_health_weights_sum_to_one")
        assert stored.fetchone() == (8,)


def test_a_rejected_csv_skips_the_inbox_task_and_the_summary_says_why(cs_daily, nexpro_url, warehouse_url, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "login_events_bad.csv").write_text(
        "login_event_id,user_id,tenant_id,logged_in_at,user_agent,created_at,updated_at\n"
        "9000002,abc,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n")
    load_table(nexpro_url, warehouse_url, NEXPRO_TABLES_BY_NAME["login_events"], source_name=SOURCE_NAME,
               raw_schema=RAW_SCHEMA, run_id="extract")
    monkeypatch.setenv("AIRFLOW_CONN_CS_WAREHOUSE", warehouse_url)
    monkeypatch.setenv("CS_INBOX_DIR", str(tmp_path))

    with pytest.raises(AirflowSkipException) as skipped:
        run_task(cs_daily, "nexpro_extract.load_csv_inbox", "run-csv")

    assert str(skipped.value) == (
        "1 CSV file(s) rejected, nothing loaded from them: login_events_bad.csv: line 2: column user_id: 'abc' is "
        "not a valid bigint. Every reason is in rejected/<file>.reason.txt: fix the lines and drop the file into "
        "the inbox again. 0 other file(s) loaded; the run goes on.")
    text = format_summary(run_summary(warehouse_url, "run-csv"))
    assert ("Rejected CSV files (nothing loaded from them): login_events_bad.csv; nexpro_extract.load_csv_inbox "
            "ended skipped\n  login_events_bad.csv: line 2: column user_id: 'abc' is not a valid bigint (all reasons: "
            ) in text
    assert (tmp_path / "rejected" / "login_events_bad.csv.reason.txt").exists()
    assert run_task(cs_daily, "nexpro_extract.load_csv_inbox", "run-csv-2") == [], "an empty inbox is no skip"


def test_the_build_runs_after_a_skipped_inbox_but_not_after_a_failed_load(cs_daily):
    assert cs_daily.get_task("dbt.dbt_producer_watcher").trigger_rule == "none_failed"


def test_a_bad_rubric_seed_fails_its_own_test_task_and_no_other(cs_daily):
    """When a test of health_indicators fails, dbt build skips everything built from the seed, and the tests that
    read those models. Cosmos fails a model's or seed's test task on any of its tests that did not pass: a test
    joining a skipped model to kpi_targets (say) must not count for kpi_targets."""
    from cosmos.operators._watcher.aggregation import accumulate_test_result, get_aggregated_test_status

    producer = cs_daily.get_task("dbt.dbt_producer_watcher")
    nodes = cs_daily.task_group_dict["dbt"].dbt_graph.nodes
    seed = "seed.csops.health_indicators"
    built_from_seed, frontier = set(), [seed]
    while frontier:
        parent = frontier.pop()
        for unique_id, node in nodes.items():
            if parent in node.depends_on and not unique_id.startswith("test.") and unique_id not in built_from_seed:
                built_from_seed.add(unique_id)
                frontier.append(unique_id)
    results: dict[str, dict[str, str]] = {}
    for test in {test for tests in producer.tests_per_model.values() for test in tests}:
        parents = set(nodes[test].depends_on)
        status = ("fail" if test == "test.csops.assert_health_weights_sum_to_one"
                  else "skipped" if parents & built_from_seed else "pass")
        accumulate_test_result(test, status, producer.tests_per_model, results)

    failing = {node for node in producer.tests_per_model if node not in built_from_seed
               and get_aggregated_test_status(node, producer.tests_per_model, results) == "fail"}

    assert failing == {seed}, f"test tasks failed although nothing is wrong in them: {sorted(failing - {seed})}"


def test_a_warning_test_shows_its_first_row_and_fails_nothing(warehouse_url):
    test = "assert_health_overrides_name_known_companies"
    row = {"named_company_id": "nexpro:10012",
           "problem": "health_status_overrides.csv: the row for company_id nexpro:10012 set on 2026-10-01: no such "
                      "company"}
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute("""
            create schema ops;
            create table ops.dbt_node_results (
                invocation_id text, airflow_run_id text, unique_id text, resource_type text, node_name text,
                status text, message text, failure_rows jsonb, recorded_at timestamptz default now())""")
        connection.execute("insert into ops.dbt_node_results values ('i', 'run-warn', %s, 'test', %s, 'warn', "
                           "'Got 1 result, configured to warn if != 0', %s)",
                           (f"test.csops.{test}", test, json.dumps([row])))
    summary = run_summary(warehouse_url, "run-warn")
    assert summary["failures"] == []
    assert (f"  warned: {test}: problem: health_status_overrides.csv: the row for company_id nexpro:10012 set on "
            "2026-10-01: no such company; named_company_id: nexpro:10012") in format_summary(summary)
