"""Bulk API 2.0 of the Salesforce sandbox through simple-salesforce's `sf.bulk2`, over real HTTPS."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceOperationError


def marker() -> str:
    """A prefix unique to one test, so tests sharing the org only see their own records."""
    return f"bulk-{uuid.uuid4().hex[:8]}"


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def names_of(sf, prefix: str, *, deleted: bool = False) -> dict[str, dict]:
    soql = f"SELECT Id, Name, Tier__c, Nexpro_Tenant_Id__c, IsDeleted FROM Account WHERE Name LIKE '{prefix}%'"
    return {record["Name"]: record for record in sf.query_all(soql, include_deleted=deleted)["records"]}


def test_insert_processes_each_row_on_its_own(salesforce_client):
    sf, prefix = salesforce_client, marker()
    records = [{"Name": f"{prefix} one", "Tier__c": "Tier 1", "NumberOfEmployees": "12"},
               {"Name": f"{prefix} bad", "Tier__c": "Tier 1", "NumberOfEmployees": "many"},
               {"Name": f"{prefix} two", "Tier__c": "", "NumberOfEmployees": ""}]
    [result] = sf.bulk2.Account.insert(records=records, wait=0)
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"], result["numberRecordsTotal"]) == (3, 1, 3)

    outcome = sf.bulk2.Account.get_all_ingest_records(result["job_id"])
    successful = {row["Name"]: row for row in outcome["successfulRecords"]}
    assert set(successful) == {f"{prefix} one", f"{prefix} two"}
    assert all(row["sf__Created"] == "true" for row in successful.values())
    [failed] = outcome["failedRecords"]
    assert failed["sf__Id"] == "" and failed["Name"] == f"{prefix} bad" and failed["NumberOfEmployees"] == "many"
    assert failed["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert "NumberOfEmployees" in failed["sf__Error"]
    assert outcome["unprocessedRecords"] == []

    stored = names_of(sf, prefix)
    assert {name: record["Id"] for name, record in stored.items()} == {
        name: row["sf__Id"] for name, row in successful.items()}
    assert stored[f"{prefix} two"]["Tier__c"] is None  # an empty cell leaves the field unset

    job = sf.bulk2.Account._client.get_job(result["job_id"], False)
    assert (job["state"], job["object"], job["operation"], job["jobType"]) == (
        "JobComplete", "Account", "insert", "V2Ingest")


def test_upsert_updates_matches_and_creates_the_rest(salesforce_client):
    sf, prefix = salesforce_client, marker()
    key = prefix[-8:]
    sf.bulk2.Account.insert(records=[{"Name": f"{prefix} old", "Nexpro_Tenant_Id__c": f"T-{key}-1"}], wait=0)
    [result] = sf.bulk2.Account.upsert(
        records=[{"Nexpro_Tenant_Id__c": f"T-{key}-1", "Name": f"{prefix} renamed", "Tier__c": "Tier 2"},
                 {"Nexpro_Tenant_Id__c": f"T-{key}-2", "Name": f"{prefix} new", "Tier__c": "Tier 3"}],
        external_id_field="Nexpro_Tenant_Id__c", wait=0)
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (2, 0)
    created = {row["Nexpro_Tenant_Id__c"]: row["sf__Created"]
               for row in rows(sf.bulk2.Account.get_successful_records(result["job_id"]))}
    assert created == {f"T-{key}-1": "false", f"T-{key}-2": "true"}
    stored = names_of(sf, prefix)
    assert set(stored) == {f"{prefix} renamed", f"{prefix} new"}
    assert stored[f"{prefix} renamed"]["Tier__c"] == "Tier 2"


def test_update_and_delete_by_id(salesforce_client):
    sf, prefix = salesforce_client, marker()
    [inserted] = sf.bulk2.Account.insert(records=[{"Name": f"{prefix} a"}, {"Name": f"{prefix} b"}], wait=0)
    ids = {row["Name"]: row["sf__Id"] for row in rows(sf.bulk2.Account.get_successful_records(inserted["job_id"]))}

    [updated] = sf.bulk2.Account.update(records=[
        {"Id": ids[f"{prefix} a"], "Tier__c": "Tier 1"},
        {"Id": "001000000000000AAA", "Tier__c": "Tier 1"},  # a well-formed Id of no record
    ], wait=0)
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (2, 1)
    [failed] = rows(sf.bulk2.Account.get_failed_records(updated["job_id"]))
    assert failed["Id"] == "001000000000000AAA" and failed["sf__Error"].startswith("NOT_FOUND:")
    assert names_of(sf, prefix)[f"{prefix} a"]["Tier__c"] == "Tier 1"

    [deleted] = sf.bulk2.Account.delete(records=[{"Id": ids[f"{prefix} b"]}], wait=0)
    assert (deleted["numberRecordsProcessed"], deleted["numberRecordsFailed"]) == (1, 0)
    assert set(names_of(sf, prefix)) == {f"{prefix} a"}
    assert names_of(sf, prefix, deleted=True)[f"{prefix} b"]["IsDeleted"] is True


def test_a_parent_can_be_named_by_its_external_id(salesforce_client):
    sf, prefix = salesforce_client, marker()
    key = f"T-{prefix[-8:]}"
    sf.bulk2.Account.insert(records=[{"Name": f"{prefix} parent", "Nexpro_Tenant_Id__c": key}], wait=0)
    [result] = sf.bulk2.Contact.insert(records=[
        {"LastName": f"{prefix} child", "Account.Nexpro_Tenant_Id__c": key},
        {"LastName": f"{prefix} orphan", "Account.Nexpro_Tenant_Id__c": "no-such-tenant"}], wait=0)
    assert result["numberRecordsFailed"] == 1
    [failed] = rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    assert failed["sf__Error"].startswith("INVALID_FIELD:Foreign key external ID: no-such-tenant not found")
    [child] = sf.query(f"SELECT Account.Name FROM Contact WHERE LastName = '{prefix} child'")["records"]
    assert child["Account"]["Name"] == f"{prefix} parent"


def test_an_unknown_column_fails_the_job_and_leaves_every_row_unprocessed(salesforce_client):
    sf, prefix = salesforce_client, marker()
    client = sf.bulk2.Account._client
    job = client.create_job("insert")
    client.upload_job_data(job["id"], f"Name,Colour__c\n{prefix} x,red\n")
    client.close_job(job["id"])
    with pytest.raises(SalesforceOperationError, match="Field name not found : Colour__c"):
        client.wait_for_job(job["id"], False, 0)
    unprocessed = rows(sf.bulk2.Account.get_unprocessed_records(job["id"]))
    assert unprocessed == [{"Name": f"{prefix} x", "Colour__c": "red"}]
    assert names_of(sf, prefix) == {}


def test_query_job_pages_with_locators(salesforce_client):
    sf, prefix = salesforce_client, marker()
    names = [f"{prefix} {n:02d}" for n in range(25)]
    sf.bulk2.Account.insert(records=[{"Name": name, "NumberOfEmployees": str(n)} for n, name in enumerate(names)],
                            wait=0)
    soql = f"SELECT Id, Name, Tier__c, IsDeleted, Owner.Name FROM Account WHERE Name LIKE '{prefix}%'"
    pages = [rows(page) for page in sf.bulk2.Account.query(soql, max_records=10, wait=0)]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert sorted(row["Name"] for page in pages for row in page) == names
    first = pages[0][0]
    assert list(first) == ["Id", "Name", "Tier__c", "IsDeleted", "Owner.Name"]
    assert (first["Tier__c"], first["IsDeleted"]) == ("", "false") and first["Owner.Name"]


def test_query_results_headers_and_a_bad_locator(salesforce_client):
    sf, prefix = salesforce_client, marker()
    sf.bulk2.Account.insert(records=[{"Name": f"{prefix} {n}"} for n in range(3)], wait=0)
    client = sf.bulk2.Account._client
    job = client.create_job("query", f"SELECT Name FROM Account WHERE Name LIKE '{prefix}%'")
    client.wait_for_job(job["id"], True, 0)
    first = client.get_query_results(job["id"], "", 2)
    assert first["number_of_records"] == 2 and first["locator"]
    last = client.get_query_results(job["id"], first["locator"], 2)
    assert (last["number_of_records"], last["locator"]) == (1, "")  # Sforce-Locator: null
    assert rows(last["records"]) == [{"Name": f"{prefix} 2"}]
    response = client.session.get(f"{sf.bulk2_url}query/{job['id']}/results", params={"locator": "bogus!"},
                                  headers=client.headers)
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_LOCATOR"


def test_query_all_job_includes_deleted_records_and_download_writes_files(salesforce_client, tmp_path):
    sf, prefix = salesforce_client, marker()
    [inserted] = sf.bulk2.Account.insert(records=[{"Name": f"{prefix} kept"}, {"Name": f"{prefix} gone"}], wait=0)
    ids = {row["Name"]: row["sf__Id"] for row in rows(sf.bulk2.Account.get_successful_records(inserted["job_id"]))}
    sf.bulk2.Account.delete(records=[{"Id": ids[f"{prefix} gone"]}], wait=0)
    soql = f"SELECT Name, IsDeleted FROM Account WHERE Name LIKE '{prefix}%'"
    every = sorted((row for page in sf.bulk2.Account.query_all(soql, wait=0) for row in rows(page)),
                   key=lambda row: row["Name"])
    assert every == [{"Name": f"{prefix} gone", "IsDeleted": "true"}, {"Name": f"{prefix} kept", "IsDeleted": "false"}]
    results = sf.bulk2.Account.download(soql, str(tmp_path), max_records=1, wait=0)
    assert [result["number_of_records"] for result in results] == [1]
    downloaded = Path(results[0]["file"]).read_text(encoding="utf-8")
    assert rows(downloaded) == [{"Name": f"{prefix} kept", "IsDeleted": "false"}]


def test_malformed_query_job_is_refused_at_creation(salesforce_client):
    sf = salesforce_client
    client = sf.bulk2.Account._client
    response = client.session.post(f"{sf.bulk2_url}query", headers=client.headers,
                                   json={"operation": "query", "query": "SELECT Nope FROM Account"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"


def test_order_by_in_a_query_job_is_refused(salesforce_client):
    # Salesforce documents ORDER BY as unsupported in Bulk API 2.0 queries: it disables PK chunking.
    sf = salesforce_client
    client = sf.bulk2.Account._client
    response = client.session.post(f"{sf.bulk2_url}query", headers=client.headers,
                                   json={"operation": "queryAll", "query": "SELECT Id FROM Account ORDER BY Id"})
    assert response.status_code == 400
    assert "ORDER BY" in response.json()[0]["message"] and "PK chunking" in response.json()[0]["message"]


def test_a_job_closed_without_data_fails_and_says_so(salesforce_client):
    client = salesforce_client.bulk2.Account._client
    job = client.create_job("insert")
    client.close_job(job["id"])
    with pytest.raises(SalesforceOperationError, match="No data was uploaded for this job"):
        client.wait_for_job(job["id"], False, 0)
    assert client.get_job(job["id"], False)["state"] == "Failed"
