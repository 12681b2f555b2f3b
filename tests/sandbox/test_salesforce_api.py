"""The Salesforce sandbox org as real clients see it: simple-salesforce and Airflow's SalesforceHook, unchanged.

Every call goes over real HTTPS (through the CONNECT proxy for `*.salesforce.com` names) to the sandbox
process, which stores the org in a real Postgres.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from csops.sandbox.salesforce.objects import OBJECTS, Field
from csops.sandbox.salesforce.server import PUBLIC_HOST
from csops.sandbox.salesforce.store import FaultRule


def error_code(error: Exception) -> str:
    return error.content[0]["errorCode"]


def new_account(sf: Salesforce, **values) -> str:
    return sf.Account.create({"Name": "株式会社テスト", **values})["id"]


# --- Login and sessions ----------------------------------------------------------------------------------


def test_login_through_the_proxy_lands_on_the_sandbox_instance(salesforce_client):
    assert salesforce_client.sf_instance == PUBLIC_HOST
    assert salesforce_client.session_id.startswith("00D")
    assert salesforce_client.Account.describe()["keyPrefix"] == "001"


def test_a_wrong_password_is_refused_with_invalid_login(salesforce_sandbox):
    login = salesforce_sandbox.credentials()
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        Salesforce(username=login.username, password="wrong", security_token=login.security_token,
                   proxies=salesforce_sandbox.proxies())
    assert refused.value.code == "INVALID_LOGIN"


def test_an_expired_session_is_refused_and_a_new_login_works(salesforce_sandbox, salesforce_client):
    direct = Salesforce(instance_url=salesforce_sandbox.instance_url, session_id=salesforce_client.session_id)
    assert direct.Account.describe()["name"] == "Account"
    assert salesforce_sandbox.admin.expire_sessions() >= 1

    with pytest.raises(SalesforceExpiredSession) as expired:
        direct.Account.describe()
    assert error_code(expired.value) == "INVALID_SESSION_ID"
    # A client that logged in with a password logs in again by itself; a fresh login works too.
    assert salesforce_client.Account.describe()["name"] == "Account"
    login = salesforce_sandbox.credentials()
    fresh = Salesforce(username=login.username, password=login.password, security_token=login.security_token,
                       proxies=salesforce_sandbox.proxies())
    assert fresh.session_id != salesforce_client.session_id
    assert fresh.Contact.describe()["name"] == "Contact"


def test_sessions_expire_after_the_configured_idle_lifetime(salesforce_sandbox, salesforce_client):
    direct = Salesforce(instance_url=salesforce_sandbox.instance_url, session_id=salesforce_client.session_id)
    salesforce_sandbox.admin.set_session_lifetime(1)
    time.sleep(1.5)
    with pytest.raises(SalesforceExpiredSession):
        direct.Account.describe()


def test_session_id_with_instance_url_or_instance_name(salesforce_sandbox, salesforce_client):
    by_url = Salesforce(instance_url=salesforce_sandbox.instance_url, session_id=salesforce_client.session_id)
    by_name = Salesforce(instance=PUBLIC_HOST, session_id=salesforce_client.session_id,
                         proxies=salesforce_sandbox.proxies())
    account_id = new_account(by_url, Tier__c="Tier 1")
    assert by_name.Account.get(account_id)["Tier__c"] == "Tier 1"


def test_calls_without_a_session_are_refused(salesforce_sandbox):
    response = requests.get(f"{salesforce_sandbox.instance_url}/services/data/v59.0/sobjects")
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


# --- Describe --------------------------------------------------------------------------------------------


def test_describe_global_lists_the_catalog(salesforce_client):
    listed = {entry["name"]: entry for entry in salesforce_client.describe()["sobjects"]}
    assert {obj.name: obj.key_prefix for obj in OBJECTS} == {name: entry["keyPrefix"] for name, entry in
                                                             listed.items()}
    assert listed["Usage__c"]["custom"] is True and listed["Account"]["custom"] is False
    assert listed["Account"]["queryable"] is True


def test_describe_reports_types_external_ids_and_references(salesforce_client):
    fields = {f["name"]: f for f in salesforce_client.Account.describe()["fields"]}
    assert fields["Nexpro_Tenant_Id__c"]["externalId"] is True
    assert fields["Nexpro_Tenant_Id__c"]["type"] == "string" and fields["Nexpro_Tenant_Id__c"]["length"] == 20
    assert fields["Annual_Contract_Value__c"]["type"] == "currency"
    assert fields["Renewal_Date__c"]["type"] == "date"
    assert fields["SystemModstamp"]["type"] == "datetime" and fields["SystemModstamp"]["createable"] is False
    assert fields["Name"]["nillable"] is False and fields["Tier__c"]["custom"] is True
    assert [v["value"] for v in fields["Tier__c"]["picklistValues"]] == ["Tier 1", "Tier 2", "Tier 3"]
    assert fields["OwnerId"]["referenceTo"] == ["User"] and fields["OwnerId"]["relationshipName"] == "Owner"
    usage = {f["name"]: f for f in salesforce_client.Usage__c.describe()["fields"]}
    assert usage["Usage_Key__c"]["unique"] is True and usage["Account__c"]["referenceTo"] == ["Account"]


def test_versions_resources_and_recent_items(salesforce_sandbox, salesforce_client):
    versions = requests.get(f"{salesforce_sandbox.instance_url}/services/data/").json()  # no session needed
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert salesforce_client.restful("")["sobjects"] == "/services/data/v59.0/sobjects"
    account_id = new_account(salesforce_client, Name="最近の取引先")
    recent = salesforce_client.Account.metadata()["recentItems"]
    assert recent[0]["Id"] == account_id and recent[0]["Name"] == "最近の取引先"


def test_an_unknown_object_is_not_found(salesforce_client):
    with pytest.raises(SalesforceResourceNotFound) as missing:
        salesforce_client.Lead.describe()
    assert error_code(missing.value) == "NOT_FOUND"


def test_a_custom_field_added_at_run_time_appears_and_takes_values(salesforce_sandbox, salesforce_client):
    salesforce_sandbox.admin.add_custom_field("Contact", Field("Nickname__c", "string", "ニックネーム"))
    fields = {f["name"]: f for f in salesforce_client.Contact.describe()["fields"]}
    assert fields["Nickname__c"]["custom"] is True and fields["Nickname__c"]["label"] == "ニックネーム"
    contact_id = salesforce_client.Contact.create({"LastName": "鈴木", "Nickname__c": "すーさん"})["id"]
    assert salesforce_client.Contact.get(contact_id)["Nickname__c"] == "すーさん"


# --- Records ---------------------------------------------------------------------------------------------


def test_create_get_update_delete(salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf, NumberOfEmployees=120, Renewal_Date__c="2027-03-31")
    created = sf.Account.get(account_id)
    assert created["NumberOfEmployees"] == 120 and created["Renewal_Date__c"] == "2027-03-31"
    assert created["IsDeleted"] is False and created["OwnerId"] == created["CreatedById"]

    contact_id = sf.Contact.create({"AccountId": account_id, "LastName": "佐藤", "FirstName": "翔太"})["id"]
    assert sf.Contact.get(contact_id)["Name"] == "佐藤 翔太"
    assert sf.Contact.update(contact_id, {"FirstName": "健"}) == 204
    assert sf.Contact.get(contact_id)["Name"] == "佐藤 健"

    time.sleep(0.01)
    assert sf.Account.update(account_id, {"Tier__c": "Tier 2", "NumberOfEmployees": None}) == 204
    updated = sf.Account.get(account_id, params={"fields": "Tier__c,NumberOfEmployees"})
    assert {key: value for key, value in updated.items() if key != "attributes"} == {
        "Tier__c": "Tier 2", "NumberOfEmployees": None, "Id": account_id}
    assert sf.Account.get(account_id)["SystemModstamp"] > created["SystemModstamp"]

    assert sf.Account.delete(account_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(account_id)
    with pytest.raises(SalesforceResourceNotFound) as again:
        sf.Account.delete(account_id)
    assert error_code(again.value) == "ENTITY_IS_DELETED"


def test_derived_opportunity_and_task_fields(salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf)
    opportunity_id = sf.Opportunity.create({"Name": "更新", "AccountId": account_id, "StageName": "Negotiation",
                                            "CloseDate": "2026-12-01", "Amount": 1200000})["id"]
    assert sf.Opportunity.get(opportunity_id)["Probability"] == 75.0
    sf.Opportunity.update(opportunity_id, {"StageName": "Closed Won"})
    won = sf.Opportunity.get(opportunity_id)
    assert (won["IsClosed"], won["IsWon"], won["Probability"], won["Amount"]) == (True, True, 100.0, 1200000.0)

    task_id = sf.Task.create({"Subject": "QBR準備", "WhatId": account_id})["id"]
    task = sf.Task.get(task_id)
    assert (task["Status"], task["Priority"], task["IsClosed"], task["CompletedDateTime"]) == (
        "Not Started", "Normal", False, None)
    sf.Task.update(task_id, {"Status": "Completed"})
    done = sf.Task.get(task_id)
    assert done["IsClosed"] is True and done["CompletedDateTime"] is not None


def test_required_field_missing(salesforce_client):
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce_client.Opportunity.create({"Name": "名前だけ"})
    assert error_code(refused.value) == "REQUIRED_FIELD_MISSING"
    assert refused.value.content[0]["fields"] == ["StageName", "CloseDate"]


@pytest.mark.parametrize(("values", "code", "field"), [
    ({"NumberOfEmployees": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", "NumberOfEmployees"),
    ({"Renewal_Date__c": "31/03/2027"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", "Renewal_Date__c"),
    ({"Nexpro_Tenant_Id__c": "x" * 21}, "INVALID_TYPE_ON_FIELD_IN_RECORD", "Nexpro_Tenant_Id__c"),
    ({"No_Such_Field__c": 1}, "INVALID_FIELD", "No_Such_Field__c"),
    ({"IsDeleted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", "IsDeleted"),
    ({"OwnerId": "0055g00000000zzAAA"}, "INVALID_CROSS_REFERENCE_KEY", "OwnerId"),
])
def test_bad_values_are_refused_naming_the_field(salesforce_client, values, code, field):
    with pytest.raises(SalesforceMalformedRequest) as refused:
        new_account(salesforce_client, **values)
    assert error_code(refused.value) == code
    assert refused.value.content[0]["fields"] == [field]


def test_an_unrestricted_picklist_takes_values_outside_its_list(salesforce_client):
    account_id = new_account(salesforce_client, Tier__c="Tier 9")
    assert salesforce_client.Account.get(account_id)["Tier__c"] == "Tier 9"


def test_unique_fields_refuse_duplicates(salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf)
    usage = {"Account__c": account_id, "Usage_Key__c": f"{account_id}:2026-11-20", "Usage_Date__c": "2026-11-20"}
    first = sf.Usage__c.create(usage)["id"]
    with pytest.raises(SalesforceMalformedRequest) as duplicate:
        sf.Usage__c.create(usage)
    assert error_code(duplicate.value) == "DUPLICATE_VALUE" and first in duplicate.value.content[0]["message"]


# --- Upsert ----------------------------------------------------------------------------------------------


def test_upsert_creates_then_updates_then_reports_multiple_matches(salesforce_client):
    sf = salesforce_client
    key = f"T-{time.time_ns()}"[-20:]
    created = sf.Account.upsert(f"Nexpro_Tenant_Id__c/{key}", {"Name": "アップサート株式会社"}, raw_response=True)
    assert created.status_code == 201 and created.json()["created"] is True
    updated = sf.Account.upsert(f"Nexpro_Tenant_Id__c/{key}", {"Tier__c": "Tier 3"}, raw_response=True)
    assert updated.status_code == 200 and updated.json() == {"id": created.json()["id"], "success": True,
                                                             "errors": [], "created": False}
    record = sf.Account.get_by_custom_id("Nexpro_Tenant_Id__c", key)
    assert (record["Name"], record["Tier__c"]) == ("アップサート株式会社", "Tier 3")

    new_account(sf, Nexpro_Tenant_Id__c=key)  # not a unique field: a second record may carry the key
    with pytest.raises(SalesforceMoreThanOneRecord) as several:
        sf.Account.upsert(f"Nexpro_Tenant_Id__c/{key}", {"Tier__c": "Tier 1"})
    assert several.value.status == 300 and len(several.value.content) == 2


def test_upsert_on_a_field_that_is_not_an_external_id(salesforce_client):
    with pytest.raises(SalesforceResourceNotFound) as refused:
        salesforce_client.Account.upsert("Name/x", {"Tier__c": "Tier 1"})
    assert error_code(refused.value) == "NOT_FOUND"


# --- sObject Collections ---------------------------------------------------------------------------------


def collection(sf: Salesforce, method: str, **kwargs) -> list[dict]:
    return sf.restful("composite/sobjects", method=method, **kwargs)


def test_collections_report_each_record(salesforce_client):
    sf = salesforce_client
    records = [{"attributes": {"type": "Account"}, "Name": "一括A"}, {"attributes": {"type": "Account"}},
               {"attributes": {"type": "Contact"}, "LastName": "田中"}]
    results = collection(sf, "POST", json={"allOrNone": False, "records": records})
    assert [result["success"] for result in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[1]["errors"][0]["fields"] == ["Name"]
    assert sf.Account.get(results[0]["id"])["Name"] == "一括A"

    changes = [{"attributes": {"type": "Account"}, "id": results[0]["id"], "Tier__c": "Tier 1"},
               {"attributes": {"type": "Account"}, "id": results[0]["id"], "NumberOfEmployees": "x"}]
    updated = collection(sf, "PATCH", json={"allOrNone": False, "records": changes})
    assert [result["success"] for result in updated] == [True, False]
    assert sf.Account.get(results[0]["id"])["Tier__c"] == "Tier 1"

    deleted = collection(sf, "DELETE", params={"ids": f"{results[0]['id']},{results[2]['id']}", "allOrNone": "false"})
    assert [result["success"] for result in deleted] == [True, True]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(results[2]["id"])


def test_collections_all_or_none_roll_every_record_back(salesforce_client):
    sf = salesforce_client
    key = f"R-{time.time_ns()}"[-20:]
    records = [{"attributes": {"type": "Account"}, "Name": "残らない", "Board_Client_Id__c": key},
               {"attributes": {"type": "Account"}, "Name": "不正", "NumberOfEmployees": "many"}]
    results = collection(sf, "POST", json={"allOrNone": True, "records": records})
    assert [result["success"] for result in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get_by_custom_id("Board_Client_Id__c", key)


def test_collections_take_at_most_200_records(salesforce_client):
    records = [{"attributes": {"type": "Account"}, "Name": f"多すぎ{n}"} for n in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        collection(salesforce_client, "POST", json={"allOrNone": False, "records": records})
    assert error_code(refused.value) == "EXCEEDED_ID_LIMIT"


def test_collections_upsert_by_external_id_creates_updates_and_reports_each_record(salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf)
    key = f"{account_id}:{time.time_ns()}"
    usage = lambda suffix, **values: {"attributes": {"type": "Usage__c"}, "Usage_Key__c": f"{key}:{suffix}",  # noqa: E731
                                      "Account__c": account_id, "Usage_Date__c": "2026-11-20", **values}
    first = sf.restful("composite/sobjects/Usage__c/Usage_Key__c", method="PATCH",
                       json={"allOrNone": False, "records": [usage("a", Login_Days_30d__c=3), usage("b")]})
    assert [(result["success"], result["created"]) for result in first] == [(True, True), (True, True)]

    path = "composite/sobjects/Usage__c/Usage_Key__c"
    again = sf.restful(path, method="PATCH", json={"allOrNone": False, "records": [
        usage("a", Login_Days_30d__c=4),
        usage("c", Account__c="001000000000000AAA"),  # a well-formed Id of no account
        {"attributes": {"type": "Usage__c"}, "Usage_Date__c": "2026-11-20", "Account__c": account_id},
        {"attributes": {"type": "Account"}, "Usage_Key__c": f"{key}:d"},
    ]})
    assert again[0] == {"id": first[0]["id"], "success": True, "errors": [], "created": False}
    assert [result["success"] for result in again[1:]] == [False, False, False]
    assert [result["errors"][0]["statusCode"] for result in again[1:]] == [
        "INVALID_CROSS_REFERENCE_KEY", "MISSING_ARGUMENT", "INVALID_TYPE"]
    assert again[1]["errors"][0]["fields"] == ["Account__c"] and again[1]["id"] is None
    assert sf.Usage__c.get(first[0]["id"])["Login_Days_30d__c"] == 4
    assert sf.query(f"SELECT COUNT() FROM Usage__c WHERE Account__c = '{account_id}'")["totalSize"] == 2


def test_collections_upsert_takes_external_ids_only(salesforce_client):
    records = [{"attributes": {"type": "Account"}, "Name": "x"}]
    for field in ("Id", "Name", "Nope__c"):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            salesforce_client.restful(f"composite/sobjects/Account/{field}", method="PATCH",
                                      json={"allOrNone": False, "records": records})
        assert error_code(refused.value) == "INVALID_FIELD" and field in refused.value.content[0]["message"]


def test_playbook_tasks_and_deals_upsert_by_their_firing_key(salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf)
    key = f"renewal_risk:{account_id}:{time.time_ns()}"
    for object_name, values in (("Task", {"Subject": "更新リスク確認", "WhatId": account_id}),
                                ("Opportunity", {"Name": "アップセル提案", "StageName": "Prospecting",
                                                 "CloseDate": "2026-12-20", "AccountId": account_id})):
        described = {f["name"]: f for f in getattr(sf, object_name).describe()["fields"]}
        assert described["Playbook_Firing_Key__c"]["externalId"] and described["Playbook_Firing_Key__c"]["unique"]
        for _ in range(2):  # a re-run of the same firing updates the record it created
            [result] = sf.restful(f"composite/sobjects/{object_name}/Playbook_Firing_Key__c", method="PATCH",
                                  json={"allOrNone": False, "records": [
                                      {"attributes": {"type": object_name}, "Playbook_Firing_Key__c": key,
                                       **values}]})
            assert result["success"], result
        found = sf.query(f"SELECT Id FROM {object_name} WHERE Playbook_Firing_Key__c = '{key}'")
        assert found["totalSize"] == 1 and not result["created"]


# --- The API budget and faults ---------------------------------------------------------------------------


def test_every_call_counts_and_the_daily_limit_is_enforced(salesforce_sandbox, salesforce_client):
    sf = salesforce_client
    salesforce_sandbox.admin.set_daily_limit(3)
    assert sf.limits()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    assert (sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total) == (1, 3)
    sf.describe()
    assert sf.api_usage["api-usage"].used == 2
    sf.describe()
    assert sf.api_usage["api-usage"].used == 3
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.describe()
    assert refused.value.content == [{"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert salesforce_sandbox.admin.usage() == {"used": 3, "limit": 3}


def test_an_injected_503_surfaces_as_a_general_error(salesforce_sandbox, salesforce_client):
    sf = salesforce_client
    salesforce_sandbox.admin.add_fault(FaultRule("GET", r"/sobjects/Account/describe$", "unavailable", times=1))
    with pytest.raises(SalesforceGeneralError) as unavailable:
        sf.Account.describe()
    assert unavailable.value.status == 503 and error_code(unavailable.value) == "SERVER_UNAVAILABLE"
    assert sf.Account.describe()["name"] == "Account"  # only the next matching call faulted
    assert salesforce_sandbox.admin.usage()["used"] == 2  # the faulted call counted too


def test_row_lock_and_delay_faults(salesforce_sandbox, salesforce_client):
    sf = salesforce_client
    account_id = new_account(sf)
    salesforce_sandbox.admin.add_fault(FaultRule("PATCH", r"/sobjects/Account/", "lock", times=1))
    with pytest.raises(SalesforceMalformedRequest) as locked:
        sf.Account.update(account_id, {"Tier__c": "Tier 1"})
    assert error_code(locked.value) == "UNABLE_TO_LOCK_ROW"
    salesforce_sandbox.admin.add_fault(FaultRule("*", r"/sobjects/Account/", "delay", delay_seconds=0.6, times=1))
    started = time.monotonic()
    assert sf.Account.update(account_id, {"Tier__c": "Tier 1"}) == 204
    assert time.monotonic() - started >= 0.6


def test_a_fault_rate_is_reproducible_with_its_seed(salesforce_sandbox, salesforce_client):
    def pattern() -> list[bool]:
        salesforce_sandbox.admin.clear_faults()
        salesforce_sandbox.admin.add_fault(FaultRule("GET", r"/sobjects$", "unavailable", rate=0.5, seed=11))
        outcomes = []
        for _ in range(12):
            try:
                salesforce_client.describe()
                outcomes.append(False)
            except SalesforceGeneralError:
                outcomes.append(True)
        return outcomes

    first = pattern()
    assert 0 < sum(first) < 12
    assert pattern() == first


# --- Replication: getUpdated / getDeleted ----------------------------------------------------------------


def test_get_updated_and_get_deleted(salesforce_client):
    sf = salesforce_client
    start = datetime.now(UTC) - timedelta(minutes=5)
    kept, removed = new_account(sf), new_account(sf)
    sf.Account.update(kept, {"Tier__c": "Tier 2"})
    sf.Account.delete(removed)
    end = datetime.now(UTC) + timedelta(minutes=5)

    updated = sf.Account.updated(start, end)
    assert kept in updated["ids"] and removed not in updated["ids"]
    assert updated["latestDateCovered"] <= end.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    deleted = sf.Account.deleted(start, end)
    assert removed in [entry["id"] for entry in deleted["deletedRecords"]]
    assert deleted["earliestDateAvailable"] < deleted["latestDateCovered"]

    with pytest.raises(SalesforceMalformedRequest) as too_old:
        sf.Account.updated(datetime.now(UTC) - timedelta(days=31), end)
    assert error_code(too_old.value) == "INVALID_REPLICATION_DATE"


# --- Airflow, persistence, the proxy ---------------------------------------------------------------------


def test_airflow_salesforce_hook_uses_the_sandbox(salesforce_sandbox, monkeypatch):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(salesforce_sandbox.airflow_connection()))
    hook = SalesforceHook(salesforce_conn_id="salesforce_default")
    assert "Health_Score__c" in hook.get_available_fields("Account")
    assert hook.get_conn().sf_instance == PUBLIC_HOST


def test_data_and_sessions_survive_a_restart(salesforce_sandbox, salesforce_client):
    account_id = new_account(salesforce_client, Tier__c="Tier 3")
    salesforce_sandbox.stop()
    assert not salesforce_sandbox.is_running()
    assert salesforce_sandbox.start() is True
    assert salesforce_sandbox.start() is False  # already running
    direct = Salesforce(instance_url=salesforce_sandbox.instance_url, session_id=salesforce_client.session_id)
    assert direct.Account.get(account_id)["Tier__c"] == "Tier 3"
    assert salesforce_sandbox.admin.usage()["used"] == 2  # the budget survives too


def test_the_proxy_refuses_hosts_other_than_salesforce(salesforce_sandbox):
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://example.com/", proxies=salesforce_sandbox.proxies(), timeout=10)
    with socket.create_connection(("127.0.0.1", salesforce_sandbox.proxy_port), timeout=10) as raw:
        raw.sendall(b"CONNECT login.salesforce.com:22 HTTP/1.1\r\nHost: login.salesforce.com:22\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 403")
