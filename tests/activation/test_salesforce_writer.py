"""The Salesforce writer against the sandbox org over HTTPS, through simple-salesforce: Collections and Bulk
API 2.0 paths, per-record outcomes, retries of injected faults, and the budget check."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from simple_salesforce import Salesforce

from csops.activation import salesforce_writer
from csops.activation.salesforce_writer import (
    BudgetReserveReached,
    WriteError,
    check_budget,
    collect_bulk_job,
    upsert,
)
from csops.extract.salesforce import CountingSession
from csops.sandbox.salesforce.objects import make_id
from csops.sandbox.salesforce.store import FaultRule
from tests.salesforce_fixtures import API_VERSION

NO_ACCOUNT = make_id("001", 9_999_999)  # a well-formed Id no account has


@pytest.fixture
def account_id(salesforce_client) -> str:
    return salesforce_client.Account.create({"Name": "書き戻し株式会社"})["id"]


def usage_rows(account_id: str, count: int, *, logins: int = 3) -> list[dict]:
    marker = time.time_ns()
    return [{"Usage_Key__c": f"{marker}:{n}", "Account__c": account_id, "Usage_Date__c": date(2026, 11, 20),
             "Login_Days_30d__c": Decimal(logins + n), "Data_Transfer_GB__c": None, "Name": f"利用状況 {n}"}
            for n in range(count)]


def stored(sf, rows: list[dict]) -> dict[str, dict]:
    keys = ", ".join(f"'{row['Usage_Key__c']}'" for row in rows)
    found = sf.query_all("SELECT Usage_Key__c, Login_Days_30d__c, Account__c FROM Usage__c "
                         f"WHERE Usage_Key__c IN ({keys})")
    return {record["Usage_Key__c"]: record for record in found["records"]}


@pytest.mark.parametrize("threshold", [1000, 2], ids=["collections", "bulk"])
def test_upsert_reports_every_record_and_a_rerun_updates(salesforce_client, account_id, threshold):
    sf = salesforce_client
    rows = usage_rows(account_id, 5)
    rows[3]["Account__c"] = NO_ACCOUNT
    result = upsert(sf, "Usage__c", "Usage_Key__c", rows, bulk_threshold=threshold)
    assert result.method == ("collections" if threshold == 1000 else "bulk")
    assert [outcome.key for outcome in result.outcomes] == [row["Usage_Key__c"] for row in rows]
    assert [outcome.success for outcome in result.outcomes] == [True, True, True, False, True]
    [rejected] = result.failed
    assert rejected.error_code == "INVALID_CROSS_REFERENCE_KEY" and NO_ACCOUNT in rejected.message
    assert all(outcome.created and outcome.record_id.startswith("a01") for outcome in result.succeeded)
    # Collections: one call. Bulk: create, upload, close, poll, successful and failed rows.
    assert (result.api_calls, result.retries) == ((1, 0) if threshold == 1000 else (6, 0))
    assert {key: float(record["Login_Days_30d__c"]) for key, record in stored(sf, rows).items()} == {
        row["Usage_Key__c"]: float(row["Login_Days_30d__c"]) for n, row in enumerate(rows) if n != 3}

    rows[3]["Account__c"] = account_id
    again = upsert(sf, "Usage__c", "Usage_Key__c", [{**row, "Login_Days_30d__c": 30} for row in rows],
                   bulk_threshold=threshold)
    assert [(outcome.success, outcome.created) for outcome in again.outcomes] == [
        (True, False), (True, False), (True, False), (True, True), (True, False)]
    assert {float(record["Login_Days_30d__c"]) for record in stored(sf, rows).values()} == {30.0}
    if threshold == 2:
        assert again.api_calls == 5, "no failed rows: the failed results are not read"


@pytest.mark.parametrize("threshold", [1000, 1], ids=["collections", "bulk"])
def test_update_by_id_changes_existing_accounts_only(salesforce_client, account_id, threshold):
    sf = salesforce_client
    records = [{"Id": account_id, "Health_Score__c": Decimal("2.35"), "Health_Status__c": "Yellow",
                "Health_Reasons__c": None, "Health_Score_Date__c": date(2026, 11, 20)},
               {"Id": NO_ACCOUNT, "Health_Score__c": 1}]
    result = upsert(sf, "Account", "Id", records, bulk_threshold=threshold)
    assert [outcome.success for outcome in result.outcomes] == [True, False]
    assert result.outcomes[0].created is False and result.outcomes[1].error_code == "NOT_FOUND"
    account = sf.Account.get(account_id)
    assert (account["Health_Score__c"], account["Health_Status__c"], account["Health_Score_Date__c"]) == (
        2.35, "Yellow", "2026-11-20")


def test_transient_faults_are_retried_and_counted(salesforce_sandbox, salesforce_client, account_id):
    salesforce_sandbox.admin.add_fault(FaultRule("PATCH", r"/composite/sobjects/Usage__c/", "unavailable", times=2))
    rows = usage_rows(account_id, 3)
    result = upsert(salesforce_client, "Usage__c", "Usage_Key__c", rows, retry_wait_seconds=0.01)
    assert all(outcome.success for outcome in result.outcomes)
    assert (result.api_calls, result.retries) == (3, 2)
    assert salesforce_sandbox.admin.usage()["used"] >= 3


def test_faults_beyond_the_retries_raise_with_what_was_written(salesforce_sandbox, salesforce_client, account_id):
    rows = usage_rows(account_id, 250)  # two Collections calls: the second one keeps failing
    salesforce_sandbox.admin.add_fault(FaultRule("PATCH", r"/composite/sobjects/Usage__c/", "unavailable", rate=1.0))
    with pytest.raises(WriteError) as failed:
        upsert(salesforce_client, "Usage__c", "Usage_Key__c", rows, attempts=2, retry_wait_seconds=0.01)
    assert "SERVER_UNAVAILABLE" in str(failed.value) and failed.value.result.api_calls == 2
    assert failed.value.result.outcomes == []


def test_records_without_a_key_or_with_a_shared_key_are_refused_before_any_call(salesforce_client, account_id):
    rows = usage_rows(account_id, 2)
    with pytest.raises(ValueError, match="#1 has no Usage_Key__c"):
        upsert(salesforce_client, "Usage__c", "Usage_Key__c", [rows[0], {**rows[1], "Usage_Key__c": None}])
    with pytest.raises(ValueError, match="#0 and #1 share Usage_Key__c"):
        upsert(salesforce_client, "Usage__c", "Usage_Key__c", [rows[0], rows[0]])
    assert upsert(salesforce_client, "Usage__c", "Usage_Key__c", []).api_calls == 0


def test_check_budget_keeps_the_reserve(salesforce_sandbox, salesforce_client, monkeypatch):
    monkeypatch.setenv("CS_SALESFORCE_API_RESERVE", "0.2")
    salesforce_sandbox.admin.set_daily_limit(100)
    budget = check_budget(salesforce_client, 10)
    assert (budget.max, budget.reserve, budget.calls_needed) == (100, 20, 10) and budget.remaining == 99
    with pytest.raises(BudgetReserveReached) as refused:
        check_budget(salesforce_client, 79, unsent="Usage__c: 9,000 record(s)")
    message = str(refused.value)
    assert "Usage__c: 9,000 record(s)" in message and "20 (20%)" in message and "Nothing was sent" in message


def test_estimate_calls_follows_the_method():
    assert salesforce_writer.estimate_calls(0) == 0
    assert salesforce_writer.estimate_calls(201, bulk_threshold=1000) == 2
    # Bulk: create, upload, close, successful and failed rows, and a poll every 2 s while Salesforce applies the
    # rows at the assumed 500 a second: 50,000 rows take 100 s, 50 polls after the first.
    assert salesforce_writer.BULK_ASSUMED_ROWS_PER_SECOND == 500
    assert salesforce_writer.estimate_calls(50_000, bulk_threshold=1000) == 5 + 1 + 50
    assert salesforce_writer.estimate_calls(50_000, bulk_threshold=1000, poll_seconds=10) == 5 + 1 + 10
    assert salesforce_writer.estimate_calls(1001, bulk_threshold=1000) == 5 + 1 + 2
    # Two jobs of 250,000 and 50,000 rows: each costs its own calls and polls.
    assert salesforce_writer.estimate_calls(300_000, bulk_threshold=1000) == (5 + 1 + 250) + (5 + 1 + 50)


def test_a_bulk_job_step_that_meets_a_503_is_retried(salesforce_sandbox, salesforce_client, account_id):
    salesforce_sandbox.admin.add_fault(FaultRule("PATCH", r"/jobs/ingest/[^/]+$", "unavailable", times=1))
    rows = usage_rows(account_id, 4)
    result = upsert(salesforce_client, "Usage__c", "Usage_Key__c", rows, bulk_threshold=1, retry_wait_seconds=0.01)
    assert result.method == "bulk" and all(outcome.success for outcome in result.outcomes)
    assert (result.api_calls, result.retries) == (6, 1), "create, upload, close twice, poll, successful rows"
    assert set(stored(salesforce_client, rows)) == {row["Usage_Key__c"] for row in rows}


# --- The budget reserve reached mid-write, and an expired session ------------------------------------------


def counting_client(sandbox, reserve_share: float) -> Salesforce:
    """A client whose session stops before a call would eat into the reserve, as the DAG's client does."""
    login = sandbox.credentials()
    session = CountingSession(reserve_share=reserve_share)
    session.proxies.update(sandbox.proxies())
    return Salesforce(username=login.username, password=login.password, security_token=login.security_token,
                      session=session, version=API_VERSION)


def test_check_budget_refuses_when_the_session_knows_the_reserve_is_reached(salesforce_sandbox, salesforce_client):
    sf = counting_client(salesforce_sandbox, reserve_share=0.5)
    salesforce_sandbox.admin.reset_usage()
    salesforce_sandbox.admin.set_daily_limit(4)
    check_budget(sf, 0)
    check_budget(sf, 0)  # 2 of 4 used: the session calls no more
    with pytest.raises(BudgetReserveReached) as refused:
        check_budget(sf, 1, unsent="Usage__c: 3 record(s)")
    assert (refused.value.budget.max, refused.value.budget.remaining, refused.value.budget.reserve) == (4, 2, 2)
    assert "Usage__c: 3 record(s)" in str(refused.value) and "Nothing was sent" in str(refused.value)
    assert salesforce_sandbox.admin.usage()["used"] == 2


def test_the_reserve_reached_mid_collections_stops_cleanly_with_what_was_answered(salesforce_sandbox,
                                                                                  salesforce_client, account_id):
    rows = usage_rows(account_id, 450)  # three Collections calls
    rows[7]["Account__c"] = NO_ACCOUNT
    sf = counting_client(salesforce_sandbox, reserve_share=0.5)
    salesforce_sandbox.admin.reset_usage()
    salesforce_sandbox.admin.set_daily_limit(4)  # 2 kept in reserve: the third call would eat into it
    answered = []
    with pytest.raises(WriteError) as stopped:
        upsert(sf, "Usage__c", "Usage_Key__c", rows, on_outcomes=answered.extend)
    error, keys = stopped.value, [row["Usage_Key__c"] for row in rows]
    assert error.stopped_by_budget and error.result.api_calls == 2 == salesforce_sandbox.admin.usage()["used"]
    assert [outcome.key for outcome in error.result.outcomes] == keys[:400] == [o.key for o in answered]
    assert [outcome.key for outcome in error.result.failed] == [keys[7]]
    assert all(outcome.created for outcome in error.result.succeeded)
    assert error.result.unanswered == keys[400:]
    message = str(error)
    assert message.startswith("Salesforce Usage__c: stopped before spending the reserve")
    assert "2 of 4 daily requests used, 2 kept" in message and "400 of 450 record(s) were answered" in message
    assert "399 written, 1 rejected" in message and "the next run sends the other 50" in message
    assert "watermark" not in message
    assert set(stored(salesforce_client, rows)) == set(keys[:400]) - {keys[7]}

    salesforce_sandbox.admin.set_daily_limit(100)  # the next run, on a budget with room again
    rest = [row for row in rows if row["Usage_Key__c"] in set(error.result.unanswered)]
    again = upsert(counting_client(salesforce_sandbox, reserve_share=0.5), "Usage__c", "Usage_Key__c", rest)
    assert again.api_calls == 1 and all(outcome.created for outcome in again.outcomes)
    assert set(stored(salesforce_client, rows)) == set(keys) - {keys[7]}


@pytest.mark.parametrize(("daily_limit", "closed"), [(6, True), (4, False)], ids=["after-close", "before-close"])
def test_the_reserve_reached_mid_bulk_job_leaves_the_job_to_collect(salesforce_sandbox, salesforce_client,
                                                                    account_id, daily_limit, closed):
    rows = usage_rows(account_id, 5)
    rows[2]["Account__c"] = NO_ACCOUNT
    keys = [row["Usage_Key__c"] for row in rows]
    sf = counting_client(salesforce_sandbox, reserve_share=0.5)
    salesforce_sandbox.admin.reset_usage()
    # Half kept in reserve: with 6 a day the poll after create, upload and close would eat into it; with 4, the close.
    salesforce_sandbox.admin.set_daily_limit(daily_limit)
    with pytest.raises(WriteError) as stopped:
        upsert(sf, "Usage__c", "Usage_Key__c", rows, bulk_threshold=1)
    error = stopped.value
    job = error.result.open_job
    assert error.stopped_by_budget and error.result.outcomes == [] and error.result.unanswered == keys
    assert (job.object_name, job.external_id_field, job.keys, job.closed) == (
        "Usage__c", "Usage_Key__c", tuple(keys), closed)
    message = str(error)
    assert message.startswith("Salesforce Usage__c: stopped before spending the reserve") and job.job_id in message
    assert "watermark" not in message
    if closed:
        assert "which Salesforce writes: their results are read first on the next run" in message
        assert "nothing is left to send" in message
        assert set(stored(salesforce_client, rows)) == set(keys) - {keys[2]}, "the closed job was applied"
    else:
        assert "was not closed, so Salesforce writes none of its 5" in message
        assert "the next run sends the other 5" in message
        assert stored(salesforce_client, rows) == {}

    salesforce_sandbox.admin.set_daily_limit(100)  # the next run, on a budget with room again
    salesforce_sandbox.admin.reset_usage()
    collected = collect_bulk_job(counting_client(salesforce_sandbox, reserve_share=0.5), job)
    assert collected.open_job is None and salesforce_sandbox.admin.usage()["used"] == collected.api_calls
    if closed:
        assert [outcome.key for outcome in collected.outcomes] == keys and collected.unanswered == []
        assert [(o.success, o.created) for o in collected.outcomes] == [
            (True, True), (True, True), (False, None), (True, True), (True, True)], "each row written once"
        assert collected.outcomes[2].error_code == "INVALID_CROSS_REFERENCE_KEY"
        assert collected.api_calls == 3, "the job's state, its successful and its failed rows"
    else:
        assert collected.outcomes == [] and collected.unanswered == keys
        assert collected.api_calls == 2, "the job's state, and the abort"
        assert salesforce_client.bulk2.Usage__c._client.get_job(job.job_id, False)["state"] == "Aborted"


def test_an_expired_session_mid_bulk_job_logs_in_again_and_completes(salesforce_sandbox, salesforce_client,
                                                                     account_id):
    rows = usage_rows(account_id, 4)
    # The close takes 3 s; the session expires after 2 s without a call: the poll after it meets 401
    # INVALID_SESSION_ID.
    salesforce_sandbox.admin.set_session_lifetime(2)
    salesforce_sandbox.admin.add_fault(FaultRule("PATCH", r"/jobs/ingest/[^/]+$", "delay", delay_seconds=3,
                                                 times=1))
    session_before = salesforce_client.session_id
    result = upsert(salesforce_client, "Usage__c", "Usage_Key__c", rows, bulk_threshold=1)
    assert result.method == "bulk" and [outcome.success for outcome in result.outcomes] == [True] * 4
    assert salesforce_client.session_id != session_before, "logged in again"
    assert salesforce_sandbox.admin.faults() == [], "the delayed close was met"
    assert set(stored(salesforce_client, rows)) == {row["Usage_Key__c"] for row in rows}
