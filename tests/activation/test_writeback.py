"""The write-back end to end: the test world's built warehouse (the activation sync models included), an org
seeded with the same world, the real simple-salesforce client through the Airflow connection, over HTTPS.

The tests run in order on one warehouse copy and one org: each starts from what the previous left (the
ledger in step with the org) and changes only what it is about.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
import requests

from csops.activation import salesforce_writer
from csops.activation.writeback import RETRY_LIMIT, SYNC_OBJECTS, WritebackError, resend, write_back
from csops.extract.salesforce import CountingSession, connect_with_hook
from csops.sandbox.salesforce.objects import make_id
from csops.sandbox.salesforce.seed import seed_org
from csops.sandbox.salesforce.store import DEFAULT_DAILY_LIMIT, DEFAULT_SESSION_LIFETIME, FaultRule
from tests.conftest import TEST_WORLD, create_database
from tests.dbt.warehouse import RUN_DATE
from tests.salesforce_fixtures import sandbox_beside

NO_ACCOUNT = make_id("001", 9_999_999)  # a well-formed Id no account has


@pytest.fixture(scope="module")
def org(postgres, salesforce_sandbox, tmp_path_factory):
    """An org seeded with the test world, as the warehouse was loaded from: the same Account Ids."""
    with sandbox_beside(salesforce_sandbox, create_database(postgres, "salesforce_wb"),
                        tmp_path_factory.mktemp("org-wb")) as sandbox:
        seed_org(sandbox.database_url, TEST_WORLD, progress=lambda _message: None)
        yield sandbox


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-3000:]
    return url


@pytest.fixture
def sf(org, monkeypatch):
    """A client through the Airflow connection salesforce_default, on a quiet org (no faults, full budget)."""
    org.admin.clear_faults()
    org.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    org.admin.reset_usage()
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(org.airflow_connection()))
    return connect_with_hook("salesforce_default")(requests.Session())


def query(url: str, statement: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def by_object(report) -> dict:
    return {r.object_name: r for r in report.objects}


def test_first_run_writes_every_record_and_a_rerun_sends_nothing(warehouse, org, sf):
    accounts = query(warehouse, 'select "Id", "Health_Score__c", "Health_Status__c" '
                                'from activation.sync_account_health')
    assert len(accounts) >= 10, "the test world's customers with an account are scored on the run date"

    report = write_back(warehouse, sf, RUN_DATE)
    assert report.ok, report.lines()
    objects = by_object(report)
    assert set(objects) == {sync.object_name for sync in SYNC_OBJECTS}
    for sync in SYNC_OBJECTS:
        rows = query(warehouse, f"select count(*) from activation.{sync.model}")[0][0]
        result = objects[sync.object_name]
        assert rows > 0, sync.model
        assert (result.considered, result.changed, result.sent, result.accepted, result.rejected) == (
            rows, rows, rows, rows, 0), result
        assert result.api_calls >= 1
    assert report.api_calls == org.admin.usage()["used"], "every call is counted: the budget read and the data"

    for account_id, score, status in accounts:
        stored = sf.Account.get(account_id)
        assert (stored["Health_Score__c"], stored["Health_Status__c"]) == (
            float(score) if score is not None else None, status)
    for sync in SYNC_OBJECTS[1:]:
        keys = {row[0] for row in query(warehouse, f'select "{sync.key_field}" from activation.{sync.model}')}
        in_org = {record[sync.key_field] for record in sf.query_all(
            f"SELECT {sync.key_field} FROM {sync.object_name}")["records"]}
        assert in_org == keys, sync.object_name
    history = sf.query_all("SELECT Score_Date__c FROM Health_Score__c")["records"]
    assert len({record["Score_Date__c"] for record in history}) > 1, "a first sync sends the history window"
    ledger = dict(query(warehouse, "select object_name, count(*) from ops.sync_ledger group by object_name"))
    assert ledger == {name: objects[name].accepted for name in objects}

    used = org.admin.usage()["used"]
    again = write_back(warehouse, sf, RUN_DATE)
    assert again.ok and again.api_calls == 0
    assert all((r.changed, r.sent) == (0, 0) for r in again.objects)
    assert org.admin.usage()["used"] == used, "a re-run makes no API call at all"


def test_a_dry_run_reports_what_would_be_sent_and_calls_nothing(warehouse):
    query(warehouse, 'update activation.sync_usage set "Login_Days_30d__c" = "Login_Days_30d__c" + 1 '
                     'where "Usage_Key__c" = (select min("Usage_Key__c") from activation.sync_usage)')
    report = write_back(warehouse, None, RUN_DATE, dry_run=True)
    assert by_object(report)["Usage__c"].changed == 1 and report.api_calls == 0
    assert sum(r.sent for r in report.objects) == 0


def test_one_changed_score_sends_one_row(warehouse, org, sf):
    write_back(warehouse, sf, RUN_DATE)  # the dry run's change goes out first
    [(account_id, score)] = query(warehouse, 'select "Id", "Health_Score__c" from activation.sync_account_health '
                                             'where "Health_Score__c" is not null order by "Id" limit 1')
    changed = score - Decimal("0.25") if score > 2 else score + Decimal("0.25")
    query(warehouse, 'update activation.sync_account_health set "Health_Score__c" = %s where "Id" = %s',
          (changed, account_id))
    org.admin.reset_usage()

    report = write_back(warehouse, sf, RUN_DATE)
    account = by_object(report)["Account"]
    assert (account.changed, account.sent, account.accepted, account.api_calls, account.method) == (
        1, 1, 1, 1, "collections")
    assert all(r.sent == 0 and r.api_calls == 0 for r in report.objects if r.object_name != "Account")
    assert report.api_calls == 2 == org.admin.usage()["used"], "the budget read and one Collections call"
    assert sf.Account.get(account_id)["Health_Score__c"] == float(changed)


def test_a_rejected_row_of_a_bulk_job_is_kept_and_retried_next_run(warehouse, org, sf):
    query(warehouse, 'update activation.sync_usage set "Attendees_30d__c" = coalesce("Attendees_30d__c", 0) + 1')
    [(key, account_id)] = query(warehouse, 'select "Usage_Key__c", "Account__c" from activation.sync_usage '
                                           'order by "Usage_Key__c" limit 1')
    query(warehouse, 'update activation.sync_usage set "Account__c" = %s where "Usage_Key__c" = %s', (NO_ACCOUNT, key))
    rows = query(warehouse, "select count(*) from activation.sync_usage")[0][0]

    first = by_object(write_back(warehouse, sf, RUN_DATE, bulk_threshold=10))["Usage__c"]
    assert (first.method, first.sent, first.accepted, first.rejected) == ("bulk", rows, rows - 1, 1)
    assert first.api_calls == 6, "create, upload, close, poll, successful and failed rows"
    [(code, message, attempts, resolved)] = query(
        warehouse, "select error_code, message, attempts, resolved_at from ops.sync_rejections "
                   "where object_name = 'Usage__c' and external_id = %s", (key,))
    assert (code, attempts, resolved) == ("INVALID_CROSS_REFERENCE_KEY", 1, None) and NO_ACCOUNT in message

    second = by_object(write_back(warehouse, sf, RUN_DATE, bulk_threshold=10))["Usage__c"]
    assert (second.changed, second.sent, second.retried, second.rejected, second.method) == (
        1, 1, 1, 1, "collections"), "the rejected row is retried, the accepted ones are not sent again"
    assert query(warehouse, "select attempts from ops.sync_rejections where external_id = %s", (key,)) == [(2,)]
    for _ in range(RETRY_LIMIT - 2):
        write_back(warehouse, sf, RUN_DATE)
    held = by_object(write_back(warehouse, sf, RUN_DATE))["Usage__c"]
    assert (held.sent, held.api_calls, held.given_up) == (0, 0, 1), "refused 5 times as it is: it waits"
    assert query(warehouse, "select attempts from ops.sync_rejections where external_id = %s", (key,)) == [
        (RETRY_LIMIT,)]

    query(warehouse, 'update activation.sync_usage set "Account__c" = %s where "Usage_Key__c" = %s',
          (account_id, key))
    third = by_object(write_back(warehouse, sf, RUN_DATE, bulk_threshold=10))["Usage__c"]
    assert (third.sent, third.accepted, third.rejected) == (1, 1, 0)
    [(resolved,)] = query(warehouse, "select resolved_at from ops.sync_rejections where external_id = %s", (key,))
    assert resolved is not None
    assert sf.Usage__c.get_by_custom_id("Usage_Key__c", key)["Account__c"] == account_id


def test_an_injected_503_is_retried(warehouse, org, sf):
    [(account_id,)] = query(warehouse, 'update activation.sync_account_health set "Health_Reasons__c" = '
                                       "'touchpoints is 1' where \"Id\" = (select min(\"Id\") from "
                                       'activation.sync_account_health) returning "Id"')
    org.admin.add_fault(FaultRule("PATCH", r"/composite/sobjects$", "unavailable", times=1))
    report = write_back(warehouse, sf, RUN_DATE)
    account = by_object(report)["Account"]
    assert report.ok and (account.sent, account.accepted, account.api_calls) == (1, 1, 2)
    assert sf.Account.get(account_id)["Health_Reasons__c"] == "touchpoints is 1"
    assert org.admin.faults() == [], "the one scripted 503 was met"


def test_the_budget_reserve_stops_the_write_back_before_anything_is_sent(warehouse, org, sf, monkeypatch):
    query(warehouse, 'update activation.sync_account_health set "Health_Trend__c" = null')
    query(warehouse, 'update activation.sync_revenue set "Invoiced_Amount__c" = "Invoiced_Amount__c" + 1')
    ledger_before = query(warehouse, "select * from ops.sync_ledger order by 1, 2")
    monkeypatch.setenv("CS_SALESFORCE_API_RESERVE", "0.5")
    org.admin.set_daily_limit(4)  # 2 kept in reserve; after the budget read 3 are left, 2 are needed

    report = write_back(warehouse, sf, RUN_DATE)
    assert not report.ok and report.error is None
    assert "Nothing was sent" in report.stopped and "Account:" in report.stopped and "Revenue__c:" in report.stopped
    assert report.api_calls == 1 == org.admin.usage()["used"], "only the budget read"
    assert (report.budget.max, report.budget.reserve) == (4, 2) and report.budget.calls_needed >= 2
    assert all(r.sent == 0 for r in report.objects) and by_object(report)["Account"].changed > 0
    assert query(warehouse, "select * from ops.sync_ledger order by 1, 2") == ledger_before

    org.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    resumed = write_back(warehouse, sf, RUN_DATE)
    assert resumed.ok and by_object(resumed)["Account"].accepted == by_object(report)["Account"].changed


def counting_client(reserve_share: float):
    """A client over a session that stops before a call would eat into the reserve, as the DAG's client does."""
    return connect_with_hook("salesforce_default")(CountingSession(reserve_share=reserve_share))


def test_the_reserve_reached_mid_bulk_job_stops_cleanly_and_the_next_run_collects_the_job(warehouse, org, sf,
                                                                                           monkeypatch):
    query(warehouse, 'update activation.sync_usage '
                     'set "Webinars_Held_30d__c" = coalesce("Webinars_Held_30d__c", 0) + 1')
    rows = query(warehouse, "select count(*) from activation.sync_usage")[0][0]
    usage_ledger = 'select external_id, values_hash from ops.sync_ledger where object_name = \'Usage__c\' order by 1'
    ledger_before = query(warehouse, usage_ledger)
    # The budget read finds room for the job's estimated calls, but 503s answered to the create and the close
    # cost retries the estimate does not count: the calls before the first poll reach the reserve.
    estimate = salesforce_writer.estimate_calls(rows, 10)
    extra = estimate - 3  # the budget read, create, upload and close are 4 calls; 1 + estimate reach the reserve
    assert 0 < extra <= 6, estimate
    org.admin.add_fault(FaultRule("POST", r"/jobs/ingest/?$", "unavailable", times=extra // 2))
    org.admin.add_fault(FaultRule("PATCH", r"/jobs/ingest/[^/]+$", "unavailable", times=extra - extra // 2))
    org.admin.set_daily_limit(2 * (1 + estimate))  # half kept in reserve
    monkeypatch.setenv("CS_SALESFORCE_API_RESERVE", "0.5")

    report = write_back(warehouse, counting_client(0.5), RUN_DATE, bulk_threshold=10)
    assert report.error is None and report.stopped, report.lines()
    usage = by_object(report)["Usage__c"]
    assert (usage.method, usage.sent, usage.accepted, usage.rejected, usage.error) == ("bulk", rows, 0, 0, None)
    [(job_id, closed, held)] = query(warehouse, "select job_id, bool_and(closed), count(*) from ops.sync_bulk_jobs "
                                                "group by job_id")
    assert closed and held == rows
    assert report.stopped.startswith("Salesforce Usage__c: stopped before spending the reserve")
    assert f"Bulk job {job_id} holds {rows:,} more, which Salesforce writes" in report.stopped
    assert "watermark" not in report.stopped and "nothing is left to send" in report.stopped
    assert "stopped by the API budget — Salesforce Usage__c" in report.lines()[0]
    assert query(warehouse, usage_ledger) == ledger_before, "no answer read yet"

    org.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)  # the next run
    org.admin.reset_usage()
    resumed = write_back(warehouse, counting_client(0.5), RUN_DATE, bulk_threshold=10)
    usage = by_object(resumed)["Usage__c"]
    assert resumed.ok, resumed.lines()
    assert (usage.collected, usage.accepted, usage.rejected, usage.sent, usage.changed) == (rows, rows, 0, 0, 0), \
        "the job's results are read and nothing is sent again"
    assert usage.api_calls == 2 == resumed.api_calls == org.admin.usage()["used"], "the job's state and its rows"
    assert query(warehouse, "select count(*) from ops.sync_bulk_jobs") == [(0,)]
    assert query(warehouse, usage_ledger) == query(
        warehouse, 'select "Usage_Key__c", md5(to_jsonb(model)::text) from activation.sync_usage as model order by 1')
    stored = {record["Usage_Key__c"]: record["Webinars_Held_30d__c"] for record in sf.query_all(
        "SELECT Usage_Key__c, Webinars_Held_30d__c FROM Usage__c")["records"]}
    assert stored == {key: float(value) for key, value in query(
        warehouse, 'select "Usage_Key__c", "Webinars_Held_30d__c" from activation.sync_usage')}
    assert write_back(warehouse, sf, RUN_DATE).api_calls == 0


def test_an_expired_session_mid_write_back_logs_in_again_and_completes(warehouse, org, sf):
    query(warehouse, 'update activation.sync_usage '
                     'set "Webinars_Held_30d__c" = coalesce("Webinars_Held_30d__c", 0) + 2')
    rows = query(warehouse, "select count(*) from activation.sync_usage")[0][0]
    # The job's close takes 3 s and a session expires after 2 s without a call: the poll meets 401.
    org.admin.set_session_lifetime(2)
    org.admin.add_fault(FaultRule("PATCH", r"/jobs/ingest/[^/]+$", "delay", delay_seconds=3, times=1))
    try:
        report = write_back(warehouse, sf, RUN_DATE, bulk_threshold=10)
    finally:
        org.admin.set_session_lifetime(DEFAULT_SESSION_LIFETIME)
    usage = by_object(report)["Usage__c"]
    assert report.ok, report.lines()
    assert (usage.method, usage.sent, usage.accepted) == ("bulk", rows, rows)
    assert org.admin.faults() == [], "the slow close was met"
    assert write_back(warehouse, sf, RUN_DATE).api_calls == 0, "everything was accepted"


def test_resend_sends_an_object_in_full(warehouse, org, sf):
    rows = query(warehouse, "select count(*) from activation.sync_revenue")[0][0]
    assert resend(warehouse, ["Revenue__c"]) == rows
    report = write_back(warehouse, sf, RUN_DATE)
    assert {r.object_name: r.sent for r in report.objects} == {
        "Account": 0, "Health_Score__c": 0, "Usage__c": 0, "Revenue__c": rows}
    with pytest.raises(ValueError, match="not written back: Nope__c"):
        resend(warehouse, ["Nope__c"])


def test_a_model_built_for_another_date_is_not_sent(warehouse, sf):
    other = RUN_DATE - timedelta(days=1)
    query(warehouse, "insert into ops.dbt_node_results (invocation_id, run_date, unique_id, resource_type, "
                     "node_name, status, recorded_at) values ('later', %s, 'model.csops.sync_usage', 'model', "
                     "'sync_usage', 'success', now() + interval '1 minute')", (other,))
    try:
        with pytest.raises(WritebackError, match=f"sync_usage was last built for {other}, not {RUN_DATE}"):
            write_back(warehouse, sf, RUN_DATE)
    finally:
        query(warehouse, "delete from ops.dbt_node_results where invocation_id = 'later'")
    assert write_back(warehouse, sf, RUN_DATE, dry_run=True).ok


def test_a_second_write_back_at_the_same_time_is_refused(warehouse, sf):
    with psycopg.connect(warehouse, autocommit=True) as running:
        running.execute("select pg_advisory_lock(hashtext('csops.writeback'))")
        with pytest.raises(WritebackError, match="another write-back is running"):
            write_back(warehouse, sf, RUN_DATE)
    assert write_back(warehouse, sf, RUN_DATE).ok
