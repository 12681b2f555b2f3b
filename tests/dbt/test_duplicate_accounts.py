"""A duplicate Salesforce account (a second account with the same tenant key, one of the seeded identity
defects) counts for its company: a key person, an outcome goal and a touchpoint logged on it count in the
company's health indicators as if logged on the company's own account."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb

from csops.sandbox.salesforce.seed import seeded_identity_issues
from tests.conftest import TEST_WORLD
from tests.dbt.warehouse import RUN_DATE, dbt

INDICATORS = "key_persons, active_goals, touchpoints_30d, touchpoints_60d"


def copy_raw_row(connection: psycopg.Connection, table: str, changes: dict) -> None:
    """Insert into raw_salesforce.<table> a copy of one of its live rows with `changes` (column -> value)."""
    connection.execute(
        f"insert into raw_salesforce.{table} "
        f"select (jsonb_populate_record(null::raw_salesforce.{table}, to_jsonb(original) || %s::jsonb)).* "
        f"from raw_salesforce.{table} as original where not original.isdeleted order by original.id limit 1",
        (Jsonb({"isdeleted": False, "_deleted_at": None, **changes}),))


def test_records_on_a_duplicate_account_count_for_its_company(built_warehouse, dbt_target):
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-3000:]
    seeded = seeded_identity_issues(TEST_WORLD)["duplicate_tenant"]
    kept, duplicate = seeded["account_id"], seeded["duplicate_account_id"]
    with psycopg.connect(url, autocommit=True) as connection:
        mapped = dict(connection.execute(
            "select account_id, company_id from intermediate.int_accounts_mapped_to_companies "
            "where account_id = any(%s)", ([kept, duplicate],)).fetchall())
        assert mapped.keys() == {kept, duplicate} and mapped[kept] == mapped[duplicate], mapped
        company = mapped[kept]
        before = connection.execute(
            f"select account_id, {INDICATORS} from intermediate.int_health_indicator_values "
            "where company_id = %s and score_date = %s", (company, RUN_DATE)).fetchone()
        assert before is not None and before[0] == kept, "the company is scored on its own account"
        touched = {day for (day,) in connection.execute(
            "select touch_date from intermediate.int_company_touchpoints where company_id = %s", (company,))}
        free_day = next(RUN_DATE - timedelta(days=back) for back in range(30)
                        if RUN_DATE - timedelta(days=back) not in touched)

        created = f"{RUN_DATE - timedelta(days=40)}T01:00:00Z"
        copy_raw_row(connection, "contact", {
            "id": "003DUPLICATE00001AAA", "accountid": duplicate, "key_person__c": True, "is_active__c": True,
            "createddate": created, "lastmodifieddate": created, "systemmodstamp": created})
        copy_raw_row(connection, "outcome_goal__c", {
            "id": "a02DUPLICATE00001AAA", "account__c": duplicate, "status__c": "Active",
            "start_date__c": str(RUN_DATE - timedelta(days=30)), "end_date__c": str(RUN_DATE + timedelta(days=60)),
            "createddate": created, "lastmodifieddate": created, "systemmodstamp": created})
        copy_raw_row(connection, "event", {
            "id": "00UDUPLICATE00001AAA", "accountid": duplicate, "whatid": duplicate,
            "activitydate": str(free_day), "startdatetime": f"{free_day}T01:00:00Z",
            "createddate": created, "lastmodifieddate": created, "systemmodstamp": created})

    rebuilt = dbt(url, dbt_target, "run", "--select", "int_health_indicator_values")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
    with psycopg.connect(url, autocommit=True) as connection:
        after = connection.execute(
            f"select account_id, {INDICATORS} from intermediate.int_health_indicator_values "
            "where company_id = %s and score_date = %s", (company, RUN_DATE)).fetchone()
    assert after[0] == kept
    assert dict(zip(INDICATORS.split(", "), after[1:], strict=True)) == {
        "key_persons": before[1] + 1, "active_goals": before[2] + 1, "touchpoints_30d": before[3] + 1,
        "touchpoints_60d": before[4] + 1}, "the duplicate account's key person, goal and touchpoint count"
