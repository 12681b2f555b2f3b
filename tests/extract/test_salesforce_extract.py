"""The Salesforce extract against the sandbox org over HTTPS, with the real simple-salesforce client.

The org is seeded once with the test world; tests that change records compare the raw tables with the
org's own storage, so they do not depend on each other's changes.
"""

from __future__ import annotations

import psycopg
import pytest
from simple_salesforce import Salesforce

from csops.extract.engine import ExtractError
from csops.extract.salesforce import CountingSession, SalesforceApi, connect_with_hook, load_object
from csops.extract.salesforce_objects import SALESFORCE_OBJECTS
from csops.sandbox.salesforce.objects import Field
from csops.sandbox.salesforce.seed import seed_org
from csops.sandbox.salesforce.store import FaultRule
from tests.conftest import TEST_WORLD
from tests.salesforce_fixtures import reset_sandbox


@pytest.fixture(scope="module")
def org(salesforce_sandbox):
    seed_org(salesforce_sandbox.database_url, TEST_WORLD, progress=lambda _message: None)
    return salesforce_sandbox


@pytest.fixture
def api(org):
    reset_sandbox(org)
    return make_api(org)


def make_api(org, reserve_share: float = 0.2) -> SalesforceApi:
    credentials = org.credentials()

    def connect(session):
        session.proxies.update(org.proxies())  # simple-salesforce takes proxies from the session it is given
        return Salesforce(username=credentials.username, password=credentials.password,
                          security_token=credentials.security_token, session=session)

    return SalesforceApi(connect, CountingSession(reserve_share=reserve_share), retry_wait_seconds=0.05)


def org_count(org, object_name: str, deleted: bool | None = None) -> int:
    condition = "" if deleted is None else f' where "IsDeleted" = {str(deleted).lower()}'
    with psycopg.connect(org.database_url) as connection:
        return connection.execute(f'select count(*) from sf."{object_name}"{condition}').fetchone()[0]


def raw(warehouse_url: str, query: str, *params):
    with psycopg.connect(warehouse_url) as connection:
        return connection.execute(query, params).fetchall()


def test_first_load_copies_every_object_with_its_deleted_rows_flagged(api, org, warehouse_url):
    for object_name in SALESFORCE_OBJECTS:
        result = load_object(api, warehouse_url, object_name, run_id="first")
        assert result.status == "succeeded" and result.load_mode == "full"
        table = object_name.lower()
        assert result.rows_read == org_count(org, object_name), object_name
        live, flagged = raw(warehouse_url, f"select count(*) filter (where _deleted_at is null), count(*) "
                                           f"filter (where _deleted_at is not null) from raw_salesforce.{table}")[0]
        assert live == org_count(org, object_name, deleted=False), object_name
        assert flagged == org_count(org, object_name, deleted=True), object_name
    columns = {name for (name,) in raw(warehouse_url, "select column_name from information_schema.columns where "
                                                      "table_schema = 'raw_salesforce' and table_name = 'account'")}
    assert {"id", "nexpro_tenant_id__c", "board_client_id__c", "tier__c", "systemmodstamp", "isdeleted"} <= columns
    audit = raw(warehouse_url, "select table_name, api_calls from ops.extract_runs where run_id = 'first'")
    assert len(audit) == len(SALESFORCE_OBJECTS) and all(calls > 0 for _, calls in audit)


def test_rerun_changes_nothing(api, org, warehouse_url):
    load_object(api, warehouse_url, "Contact", run_id="one")
    again = load_object(api, warehouse_url, "Contact", run_id="two")
    assert again.load_mode == "incremental"
    assert (again.rows_inserted, again.rows_updated, again.rows_deleted) == (0, 0, 0)


def test_updates_and_deletes_are_picked_up(api, org, warehouse_url, salesforce_client):
    load_object(api, warehouse_url, "Account", run_id="before")
    account = salesforce_client.query("SELECT Id, Name FROM Account ORDER BY Id LIMIT 2")["records"]
    changed, removed = account[0]["Id"], account[1]["Id"]
    salesforce_client.Account.update(changed, {"Tier__c": "Tier 1", "Growth_Potential__c": "Low"})
    salesforce_client.Account.delete(removed)
    after = load_object(api, warehouse_url, "Account", run_id="after")
    assert after.load_mode == "incremental" and after.rows_deleted == 1 and after.rows_updated >= 1
    assert raw(warehouse_url, "select tier__c, growth_potential__c from raw_salesforce.account where id = %s",
               changed) == [("Tier 1", "Low")]
    assert raw(warehouse_url, "select isdeleted, _deleted_at is not null from raw_salesforce.account where id = %s",
               removed) == [(True, True)]


def test_a_new_custom_field_becomes_a_raw_column(api, org, warehouse_url, salesforce_client):
    load_object(api, warehouse_url, "Opportunity", run_id="before-drift")
    org.admin.add_custom_field("Opportunity", Field("Competitor__c", "string", "競合"))
    deal = salesforce_client.query("SELECT Id FROM Opportunity LIMIT 1")["records"][0]["Id"]
    salesforce_client.Opportunity.update(deal, {"Competitor__c": "ZoomOn"})
    result = load_object(api, warehouse_url, "Opportunity", run_id="after-drift")
    assert result.added_columns == ["competitor__c"]
    assert raw(warehouse_url, "select competitor__c from raw_salesforce.opportunity where id = %s",
               deal) == [("ZoomOn",)]


def test_bulk_query_above_the_threshold_reads_the_same_rows_as_rest(api, org, postgres):
    from tests.conftest import create_database

    by_rest, by_bulk = create_database(postgres, "warehouse"), create_database(postgres, "warehouse")
    rest = load_object(api, by_rest, "Task", run_id="rest")
    bulk = load_object(api, by_bulk, "Task", run_id="bulk", bulk_threshold=5, bulk_poll_seconds=0.05)
    assert rest.rows_read == bulk.rows_read > 5
    query = "select * from raw_salesforce.task order by id"
    drop_loaded_at = [row[:-3] for row in raw(by_rest, query)], [row[:-3] for row in raw(by_bulk, query)]
    assert drop_loaded_at[0] == drop_loaded_at[1]


def test_transient_errors_are_retried(api, org, warehouse_url):
    org.admin.add_fault(FaultRule("GET", "/query", "unavailable", times=2))
    result = load_object(api, warehouse_url, "User", run_id="flaky")
    assert result.status == "succeeded" and result.rows_read == org_count(org, "User")


def test_the_budget_reserve_stops_the_load_cleanly_and_the_next_run_resumes(org, warehouse_url,
                                                                          salesforce_client):
    # Enough Tasks for two REST pages of 2,000.
    salesforce_client.bulk2.Task.insert(records=[
        {"Subject": f"Follow-up {n}", "Status": "Completed", "Priority": "Normal", "ActivityDate": "2026-11-01"}
        for n in range(2_100)])
    expected = org_count(org, "Task")
    reset_sandbox(org)
    org.admin.set_daily_limit(5)  # 20% kept: the limits, describe, count and first page calls fit, not a second
    try:
        stopped = load_object(make_api(org), warehouse_url, "Task", run_id="stopped", bulk_threshold=10**9)
    finally:
        reset_sandbox(org)
    assert stopped.status == "stopped" and "reserve" in stopped.error
    assert stopped.rows_read == 2_000 and stopped.api_calls == 4
    loaded = raw(warehouse_url, "select count(*), max(systemmodstamp) from raw_salesforce.task")[0]
    assert loaded[0] == 2_000
    watermark = raw(warehouse_url, "select watermark from ops.extract_watermarks where table_name = 'task'")
    assert watermark == [(loaded[1],)]
    resumed = load_object(make_api(org), warehouse_url, "Task", run_id="resumed")
    assert resumed.status == "succeeded" and resumed.load_mode == "incremental"
    assert raw(warehouse_url, "select count(*) from raw_salesforce.task")[0][0] == expected


def test_a_budget_already_at_its_reserve_reads_nothing(org, warehouse_url):
    reset_sandbox(org)
    org.admin.set_daily_limit(10)
    try:
        stopped = load_object(make_api(org, reserve_share=0.9), warehouse_url, "User", run_id="no-budget")
    finally:
        reset_sandbox(org)
    assert (stopped.status, stopped.rows_read, stopped.api_calls) == ("stopped", 0, 1)
    assert raw(warehouse_url, "select status, error like '%%reserve%%' from ops.extract_runs") == [("stopped", True)]


def test_an_unknown_object_fails_naming_it_and_the_fix(api, warehouse_url):
    with pytest.raises(ExtractError, match="Nope__c.*remove it from SALESFORCE_OBJECTS|Nope__c.*does not expose"):
        load_object(api, warehouse_url, "Nope__c", run_id="unknown")
    assert raw(warehouse_url, "select status from ops.extract_runs where run_id = 'unknown'") == [("failed",)]


def test_an_expired_session_logs_in_again(api, org, warehouse_url):
    api.limits()
    org.admin.expire_sessions()
    result = load_object(api, warehouse_url, "User", run_id="expired")
    assert result.status == "succeeded"


def test_the_airflow_connection_reaches_the_org(org, warehouse_url, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(org.airflow_connection()))
    api = SalesforceApi(connect_with_hook("salesforce_default"), CountingSession(reserve_share=0.2))
    result = load_object(api, warehouse_url, "User", run_id="hook")
    assert result.rows_read == org_count(org, "User")


def test_a_bulk_query_has_no_order_by(api, org, warehouse_url):
    # The sandbox refuses ORDER BY in Bulk query jobs, as Salesforce documents it (it disables PK chunking).
    result = load_object(api, warehouse_url, "Task", run_id="bulk-soql", bulk_threshold=5, bulk_poll_seconds=0.05)
    assert result.status == "succeeded" and result.rows_read == org_count(org, "Task")
    assert raw(warehouse_url, "select count(*) from raw_salesforce.task")[0][0] == org_count(org, "Task")


def test_a_row_quarantined_on_a_full_load_is_not_flagged_deleted(api, org, warehouse_url, salesforce_client):
    load_object(api, warehouse_url, "Account", run_id="before")
    account = salesforce_client.query("SELECT Id FROM Account ORDER BY Id LIMIT 1")["records"][0]["Id"]
    # The raw column is narrower than the values Salesforce now holds: this account's row cannot load.
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute("alter table raw_salesforce.account alter column name type varchar(80) "
                           "using left(name, 80)")
    salesforce_client.Account.update(account, {"Name": "株式会社" + "ウェビナー" * 20})

    refreshed = load_object(api, warehouse_url, "Account", run_id="refresh", full_refresh=True)

    assert (refreshed.rows_quarantined, refreshed.rows_deleted) == (1, 0)
    assert raw(warehouse_url, "select _deleted_at from raw_salesforce.account where id = %s", account) == [(None,)]


def test_a_bulk_read_stopped_at_the_budget_keeps_the_windows_read_whole_and_the_next_run_finishes(
        org, warehouse_url, postgres):
    """A Bulk read goes by windows of SystemModstamp: stopped by the budget in the middle, the watermark
    moves to the end of the last window read whole, and the next run reads on from there."""
    from datetime import UTC, datetime, timedelta

    from csops.extract.salesforce import bulk_windows
    from tests.conftest import create_database

    window = timedelta(days=20)
    reset_sandbox(org)
    windows = bulk_windows(make_api(org).earliest("Task"), datetime.now(UTC), window)
    assert len(windows) >= 4 and windows[0][0] is not None and windows[-1][1] is None
    whole = load_object(make_api(org), create_database(postgres, "warehouse"), "Task", run_id="whole",
                        bulk_threshold=5, bulk_poll_seconds=0.05, bulk_window=window)
    # limits, describe, COUNT() and the oldest stamp; then each window's job: create, poll, one page.
    assert whole.api_calls == 4 + 3 * len(windows)
    allowed = 4 + 3 * 2  # two windows read whole; the third window's job is not created
    limit = next(limit for limit in range(1, 100) if limit - int(limit * 0.2) == allowed)
    reset_sandbox(org)
    org.admin.set_daily_limit(limit)
    try:
        stopped = load_object(make_api(org), warehouse_url, "Task", run_id="stopped", bulk_threshold=5,
                              bulk_poll_seconds=0.05, bulk_window=window)
    finally:
        reset_sandbox(org)
    assert stopped.status == "stopped" and "reserve" in stopped.error and stopped.api_calls == allowed
    end_of_second = windows[1][1]
    [(watermark,)] = raw(warehouse_url, "select watermark from ops.extract_watermarks where table_name = 'task'")
    assert watermark == end_of_second, "the watermark is the end of the last window read whole"
    loaded, older = raw(warehouse_url, "select count(*), count(*) filter (where systemmodstamp < %s) "
                                       "from raw_salesforce.task", end_of_second)[0]
    with psycopg.connect(org.database_url) as connection:
        in_two_windows = connection.execute('select count(*) from sf."Task" where "SystemModstamp" < %s',
                                            (end_of_second,)).fetchone()[0]
    assert loaded == older == in_two_windows > 0

    resumed = load_object(make_api(org), warehouse_url, "Task", run_id="resumed", bulk_threshold=5,
                          bulk_poll_seconds=0.05, bulk_window=window)
    assert resumed.status == "succeeded" and resumed.load_mode == "incremental"
    assert raw(warehouse_url, "select count(*) from raw_salesforce.task")[0][0] == org_count(org, "Task")
