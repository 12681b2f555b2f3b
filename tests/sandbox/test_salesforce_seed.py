"""The Salesforce sandbox org seeded from the world: deterministic, extendable day by day, persona-shaped,
with exactly the identity defects it declares."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from simple_salesforce import Salesforce

from csops.sandbox.salesforce import store
from csops.sandbox.salesforce.objects import API_VERSION, OBJECTS, is_valid_id
from csops.sandbox.salesforce.seed import (
    TIER_MATRIX,
    anniversary,
    seed_org,
    seeded_identity_issues,
    tier,
)
from csops.sandbox.salesforce.server import INTEGRATION_USERNAME, SalesforceSandbox
from csops.sandbox.world import PLANS_BY_CODE, SIGNED_BEFORE_START_DAYS, plan_companies, plan_on
from tests.conftest import TEST_WORLD, create_database, free_port

QUIET = lambda _message: None  # noqa: E731
END = TEST_WORLD.end_date
COMPANIES = {company.company_key: company for company in plan_companies(TEST_WORLD)}


def fingerprint(url) -> dict[str, str]:
    """An order-independent digest of every sf table's content."""
    with psycopg.connect(url) as connection:
        return {obj.name: connection.execute(
            f'select count(*)::text || \':\' || coalesce(md5(string_agg(md5(t::text), \'\' order by md5(t::text))), '
            f'\'\') from sf."{obj.name}" as t').fetchone()[0] for obj in OBJECTS}


def rows(url, query: str, *params) -> list[dict]:
    """The query's rows as dicts; `params` are positional, or a single dict of named ones."""
    arguments = params[0] if len(params) == 1 and isinstance(params[0], dict) else params
    with psycopg.connect(url) as connection:
        return connection.cursor(row_factory=dict_row).execute(query, arguments).fetchall()


@pytest.fixture(scope="module")
def org(postgres) -> str:
    """The test world's org, seeded once for the read-only tests of this module."""
    url = create_database(postgres, "sf_org")
    seed_org(url, TEST_WORLD, progress=QUIET)
    return url


@pytest.fixture(scope="module")
def accounts(org) -> dict[str, dict]:
    """The accounts of world companies by company key (the duplicate and the dangling account go by other names)."""
    by_name = {c.company_name: key for key, c in COMPANIES.items()}
    return {by_name[row["Name"]]: row for row in rows(org, 'select * from sf."Account"') if row["Name"] in by_name}


def keys_of(persona: str, accounts: dict[str, dict]) -> list[str]:
    return [key for key, company in COMPANIES.items() if company.persona == persona and key in accounts]


def test_the_same_world_seeds_the_same_org_and_a_second_run_reuses_it(org, postgres):
    other = create_database(postgres, "sf_again")
    outcome = seed_org(other, TEST_WORLD, progress=QUIET)
    assert outcome["action"] == "seeded"
    assert fingerprint(other) == fingerprint(org)
    assert seed_org(other, TEST_WORLD, progress=QUIET)["action"] == "reused"
    assert fingerprint(other) == fingerprint(org)


def test_extending_to_a_later_day_equals_seeding_to_that_day_directly(postgres):
    later = TEST_WORLD.end_date + timedelta(days=45)  # deals close, tasks fall due, a new month of results
    extended, direct = create_database(postgres, "sf_extended"), create_database(postgres, "sf_direct")
    seed_org(extended, TEST_WORLD, progress=QUIET)
    before = fingerprint(extended)

    outcome = seed_org(extended, replace(TEST_WORLD, end_date=later), progress=QUIET)
    seed_org(direct, TEST_WORLD, progress=QUIET, through=later)

    assert outcome["action"] == "extended"
    assert outcome["world"] == TEST_WORLD, "the world keeps the plan it was seeded with"
    assert outcome["updated"] > 0, "the days since changed existing records"
    after = fingerprint(extended)
    assert after == fingerprint(direct)
    assert after["Task"] != before["Task"]
    [renewals] = rows(extended, 'select count(*) filter (where "Renewal_Date__c" <= %s) as past from sf."Account" '
                      'where "Type" = \'Customer\'', later)
    assert renewals["past"] == 0, "renewal dates rolled over to the next anniversary"


def test_another_world_empties_the_org_and_says_so(postgres):
    url = create_database(postgres, "sf_other")
    seed_org(url, TEST_WORLD, progress=QUIET)
    messages = []

    outcome = seed_org(url, replace(TEST_WORLD, seed=TEST_WORLD.seed + 1), progress=messages.append)

    assert outcome["action"] == "seeded"
    assert any("holds another world" in message and "emptying" in message for message in messages)
    other_names = {c.company_name for c in plan_companies(replace(TEST_WORLD, seed=TEST_WORLD.seed + 1))}
    names = {row["Name"] for row in rows(url, 'select "Name" from sf."Account"')}
    assert len(names & other_names) == len(other_names) - 1, "every company of the new world but one has an account"
    assert len(names) == len(other_names) + 1  # minus the company without account, plus duplicate and dangling
    [users] = rows(url, 'select count(*) as n from sf."User" where "Username" = %s', INTEGRATION_USERNAME)
    assert users["n"] == 1


def test_the_integration_user_of_the_api_server_is_reused_across_a_reset(postgres):
    url = create_database(postgres, "sf_integration")
    with psycopg.connect(url) as connection:  # what the API server does when it starts on an empty org
        store.ensure_schema(connection)
        user_id = store.ensure_user(connection, INTEGRATION_USERNAME, "連携ユーザ", INTEGRATION_USERNAME, "CS Ops")

    seed_org(url, TEST_WORLD, progress=QUIET)
    seed_org(url, replace(TEST_WORLD, seed=TEST_WORLD.seed + 1), progress=QUIET)  # another world: a reset

    integration = rows(url, 'select "Id" from sf."User" where "Username" = %s', INTEGRATION_USERNAME)
    assert integration == [{"Id": user_id}]
    [created] = rows(url, 'select count(*) as n from sf."Account" where "CreatedById" = %s', user_id)
    assert created["n"] > 0, "the seeded accounts name the existing integration user as their creator"
    with psycopg.connect(url) as connection:  # the API server can still create users after the seed
        assert is_valid_id(store.ensure_user(connection, "someone@example.com", "Someone", "someone@example.com"))


def test_ids_are_valid_and_every_reference_points_at_a_record(org):
    with psycopg.connect(org) as connection:
        for obj in OBJECTS:
            ids = [row[0] for row in connection.execute(f'select "Id" from sf."{obj.name}"')]
            assert all(is_valid_id(i) and len(i) == 18 and i.startswith(obj.key_prefix) for i in ids), obj.name
            for f in obj.fields:
                if f.reference_to is None:
                    continue
                dangling = connection.execute(
                    f'select count(*) from sf."{obj.name}" as child where child."{f.name}" is not null and not exists '
                    f'(select from sf."{f.reference_to}" as parent where parent."Id" = child."{f.name}")').fetchone()[0]
                assert dangling == 0, f"{obj.name}.{f.name} points at missing {f.reference_to} records"
        [[orphans]] = connection.execute(
            'select count(*) from sf."Task" where "OwnerId" is null or "AccountId" is null').fetchall()
        assert orphans == 0


def test_every_record_has_its_system_fields_within_the_world(org):
    cutoff = TEST_WORLD.end_date + timedelta(days=1)
    with psycopg.connect(org) as connection:
        for obj in OBJECTS:
            required = ["IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                        "SystemModstamp"] + (["OwnerId"] if obj.field("OwnerId") else [])
            missing_clause = " or ".join(f'"{name}" is null' for name in required)
            [[missing, late, backwards]] = connection.execute(
                f'select count(*) filter (where {missing_clause}), '
                f'count(*) filter (where "SystemModstamp" > %s or "LastModifiedDate" > %s), '
                f'count(*) filter (where "LastModifiedDate" < "CreatedDate" or "SystemModstamp" < "LastModifiedDate") '
                f'from sf."{obj.name}"', (cutoff, cutoff)).fetchall()
            assert (missing, late, backwards) == (0, 0, 0), obj.name
    users = rows(org, 'select * from sf."User"')
    manager = next(u for u in users if u["Title"].endswith("マネージャー") and u["ManagerId"] is None)
    csms = [u for u in users if u["ManagerId"] == manager["Id"]]
    assert len(csms) >= 3
    assert all(u["Name"] == f'{u["LastName"]} {u["FirstName"]}' for u in users)
    contacts = rows(org, 'select "Name", "FirstName", "LastName" from sf."Contact"')
    assert all(c["Name"] == f'{c["LastName"]} {c["FirstName"]}' for c in contacts)


def test_accounts_carry_the_world_company_and_its_contract(org, accounts):
    for key, account in accounts.items():
        company = COMPANIES[key]
        assert account["Annual_Contract_Value__c"] == 12 * PLANS_BY_CODE[plan_on(company, END)].monthly_price_jpy, key
        back = company.reactivated_on is not None and company.reactivated_on <= END
        start = company.reactivated_on if back else company.contract_started_on
        assert account["Contract_Start_Date__c"] == start
        former = company.cancelled_on is not None and company.cancelled_on <= END and not back
        assert account["Industry"] == company.industry
        assert account["Type"] == ("Former Customer" if former else "Customer"), key
        renewal = account["Renewal_Date__c"]
        if former:
            assert renewal == company.cancelled_on, "the renewal it did not reach"
        else:
            assert renewal > END >= renewal - timedelta(days=366), key
        assert renewal in {anniversary(start, years) for years in range(1, 5)}
        assert account["Tier__c"] == tier(account["Annual_Contract_Value__c"], account["Growth_Potential__c"])
    potential = {COMPANIES[key].persona: a["Growth_Potential__c"] for key, a in accounts.items()}
    assert potential.get("thriving") == "High" and potential.get("declining") == "Low"
    assert set(TIER_MATRIX.values()) == {"Tier 1", "Tier 2", "Tier 3"}
    books = rows(org, 'select "OwnerId", count(*) as n from sf."Account" group by 1')
    assert max(b["n"] for b in books) - min(b["n"] for b in books) <= 2, "CSM books are balanced"


def test_identity_issues_are_exactly_those_declared(org):
    issues = seeded_identity_issues(TEST_WORLD)
    all_accounts = {row["Id"]: row for row in rows(org, 'select * from sf."Account"')}

    without_tenant = {i for i, a in all_accounts.items() if a["Nexpro_Tenant_Id__c"] is None}
    assert without_tenant == {entry["account_id"] for entry in issues["accounts_without_tenant_id"]}
    for entry in issues["accounts_without_tenant_id"]:
        assert all_accounts[entry["account_id"]]["Name"] == COMPANIES[entry["company_key"]].company_name

    tenant_ids = [a["Nexpro_Tenant_Id__c"] for a in all_accounts.values() if a["Nexpro_Tenant_Id__c"]]
    duplicated = {t for t in tenant_ids if tenant_ids.count(t) > 1}
    duplicate = issues["duplicate_tenant"]
    assert duplicated == {str(duplicate["tenant_id"])}
    assert {i for i, a in all_accounts.items() if a["Nexpro_Tenant_Id__c"] == str(duplicate["tenant_id"])} == {
        duplicate["account_id"], duplicate["duplicate_account_id"]}

    world_tenants = {str(c.nexpro_tenant_id) for c in COMPANIES.values()}
    dangling = {i for i, a in all_accounts.items() if a["Nexpro_Tenant_Id__c"] not in world_tenants | {None}}
    assert dangling == {issues["dangling_tenant"]["account_id"]}
    assert all_accounts[issues["dangling_tenant"]["account_id"]]["Nexpro_Tenant_Id__c"] == str(
        issues["dangling_tenant"]["tenant_id"])

    lost = issues["company_without_account"]
    covered = set(tenant_ids) | {str(COMPANIES[e["company_key"]].nexpro_tenant_id)
                                 for e in issues["accounts_without_tenant_id"]}
    assert world_tenants - covered == {str(lost["tenant_id"])}
    assert COMPANIES[lost["company_key"]].company_name not in {a["Name"] for a in all_accounts.values()}

    no_board = {i for i, a in all_accounts.items() if a["Board_Client_Id__c"] is None}
    assert no_board == {issues["account_without_board_client_id"]["account_id"]}


def deals_of(org, account_id: str, kind: str) -> list[dict]:
    return rows(org, 'select * from sf."Opportunity" where "AccountId" = %s and "Type" = %s', account_id, kind)


def test_cancelling_companies_give_notice_lose_key_persons_and_go_quiet(org, accounts):
    seen = set()
    for key, account in accounts.items():
        company = COMPANIES[key]
        if company.cancelled_on is None:
            continue
        cancelled, account_id = company.cancelled_on, account["Id"]
        seen.add("cancelling" if cancelled > END else "reactivated" if company.reactivated_on else "cancelled")
        [lost] = [d for d in deals_of(org, account_id, "Renewal") if d["Service_Start_Date__c"] == cancelled]
        assert lost["StageName"] == "Closed Lost", key
        assert lost["CloseDate"] == min(cancelled - timedelta(days=30), END - timedelta(days=3)), "notice given"
        quiet_from = cancelled - timedelta(days=59)
        key_persons = rows(org, 'select * from sf."Contact" where "AccountId" = %s and "Key_Person__c" '
                           'and not "IsDeleted"', account_id)
        left = [c for c in key_persons if not c["Is_Active__c"]]
        assert all(quiet_from <= c["LastModifiedDate"].date() <= cancelled for c in left), key
        if cancelled <= END:
            assert left and sum(c["Is_Active__c"] for c in key_persons) <= 1, key
        [touches] = rows(org, """
            select (select count(*) from sf."Task" where "AccountId" = %(a)s and "Status" = 'Completed'
                      and "ActivityDate" between %(d)s and %(e)s)
                 + (select count(*) from sf."Event" where "AccountId" = %(a)s
                      and "ActivityDate" between %(d)s and %(e)s)
                 + (select count(*) from sf."Meeting_Note__c" where "Account__c" = %(a)s
                      and "Meeting_Date__c" between %(d)s and %(e)s) as n""",
                         {"a": account_id, "d": quiet_from, "e": company.reactivated_on or END})
        assert touches["n"] == 0, f"{key}: no touches from its quiet days until it comes back"
        if company.reactivated_on is not None:
            [deal] = [d for d in deals_of(org, account_id, "New")
                      if d["Service_Start_Date__c"] == company.reactivated_on]
            assert (deal["StageName"], deal["CloseDate"]) == ("Closed Won", company.reactivated_on)
            assert account["Renewal_Date__c"] == anniversary(company.reactivated_on, 1)
    assert seen == {"cancelled", "cancelling", "reactivated"}
    scheduled = rows(org, 'select count(*) as n from sf."Opportunity" where "Type" = \'Renewal\' '
                     'and "StageName" = \'Closed Lost\' and "Service_Start_Date__c" > %s', END)
    cancelling = [key for key in accounts if COMPANIES[key].cancelled_on and COMPANIES[key].cancelled_on > END]
    assert scheduled == [{"n": len(cancelling)}], "scheduled cancellations, as the revenue marts will read them"


def test_upgrades_are_won_a_week_before_they_start_and_one_is_won_not_yet_started(org, accounts):
    upgrading = [key for key in accounts if COMPANIES[key].plan_change == "upgrade"]
    starts_after_end = []
    for key in upgrading:
        changed = COMPANIES[key].plan_changed_on
        deals = deals_of(org, accounts[key]["Id"], "Upsell")
        [won] = [d for d in deals if d["Service_Start_Date__c"] == changed]
        assert (won["StageName"], won["CloseDate"]) == ("Closed Won", changed - timedelta(SIGNED_BEFORE_START_DAYS))
        if changed > END:
            starts_after_end.append(key)
        elif changed + timedelta(days=7) <= END:
            assert any(not d["IsClosed"] for d in deals), f"{key} weighs its next proposal"
    assert starts_after_end, "an upgrade won before the end that starts after it"
    [signed] = rows(org, 'select count(*) as n from sf."Opportunity" where "IsWon" and "Service_Start_Date__c" > %s',
                    END)
    assert signed["n"] == len(starts_after_end), "the only deals won, not yet started"


def test_onboarding_stalled_companies_have_nothing_after_their_burst(org, accounts):
    stalled = keys_of("onboarding_stalled", accounts)
    assert stalled
    for key in stalled:
        account_id, burst_end = accounts[key]["Id"], COMPANIES[key].contract_started_on + timedelta(days=13)
        dates = [r["d"] for r in rows(
            org, 'select "ActivityDate" as d from sf."Task" where "AccountId" = %s and "Status" = \'Completed\' '
            'union all select "ActivityDate" from sf."Event" where "AccountId" = %s '
            'union all select "Meeting_Date__c" from sf."Meeting_Note__c" where "Account__c" = %s',
            account_id, account_id, account_id)]
        assert dates, f"{key} had an onboarding burst"
        assert max(dates) <= burst_end, key


def test_outcome_results_follow_the_persona_and_some_companies_have_no_goal(org, accounts):
    results = rows(org, 'select r.*, g."Target_Value__c" from sf."Outcome_Result__c" r '
                   'join sf."Outcome_Goal__c" g on g."Id" = r."Outcome_Goal__c"')
    persona_of = {a["Id"]: COMPANIES[key].persona for key, a in accounts.items()}
    for result in results:
        rate = float(result["Achievement_Rate__c"])
        assert rate == pytest.approx(float(result["Actual_Value__c"] / result["Target_Value__c"] * 100), abs=0.06)
        match persona_of[result["Account__c"]]:
            case "thriving" | "expanding":
                assert rate >= 80
            case "steady":
                assert 50 <= rate < 80
            case "declining" | "churn_bound":
                assert rate < 50
    with_goal = {row["Account__c"] for row in rows(org, 'select distinct "Account__c" from sf."Outcome_Goal__c"')}
    assert results and with_goal and set(persona_of) - with_goal, "some companies define no goal"
    for table in ("Usage__c", "Health_Score__c", "Revenue__c"):
        assert rows(org, f'select count(*) as n from sf."{table}"') == [{"n": 0}], "written back by the platform"


def test_deals_and_tasks_carry_their_derived_fields_and_proposals_are_measurable(org):
    for deal in rows(org, 'select * from sf."Opportunity"'):
        stage = deal["StageName"]
        assert (deal["IsClosed"], deal["IsWon"]) == (stage.startswith("Closed"), stage == "Closed Won")
        assert deal["Service_Start_Date__c"] is not None
        if deal["Type"] in ("New", "Renewal"):
            assert deal["Service_Start_Date__c"] >= deal["CloseDate"], "won (or lost) before the service starts"
    tasks = rows(org, 'select * from sf."Task"')
    assert all(t["IsClosed"] == (t["Status"] == "Completed") for t in tasks)
    assert all((t["CompletedDateTime"] is not None) == t["IsClosed"] for t in tasks)
    assert any(not t["IsClosed"] and t["ActivityDate"] > TEST_WORLD.end_date for t in tasks), "open future tasks"
    assert {t["Type"] for t in tasks} >= {"Call", "Email", "Other"}
    proposals = rows(org, 'select "OwnerId", "StageName", "CreatedDate" from sf."Opportunity" '
                     'where "Type" in (\'Upsell\', \'Cross-sell\') and "CreatedDate" >= %s', TEST_WORLD.start_date)
    stages = {p["StageName"] for p in proposals}
    assert {"Closed Won", "Closed Lost"} <= stages, "proposal → close rate has both outcomes"
    qbrs = rows(org, 'select a."Tier__c" from sf."Event" e join sf."Account" a on a."Id" = e."AccountId" '
                'where e."Type" = \'QBR\'')
    assert qbrs and {q["Tier__c"] for q in qbrs} <= {"Tier 1", "Tier 2"}


def test_the_recycle_bin_holds_a_deleted_duplicate_contact(org):
    deleted = rows(org, 'select * from sf."Contact" where "IsDeleted"')
    assert deleted
    for contact in deleted:
        assert contact["SystemModstamp"] == contact["LastModifiedDate"] > contact["CreatedDate"], "deleted later"
        twins = rows(org, 'select count(*) as n from sf."Contact" where not "IsDeleted" and "Email" = %s '
                     'and "AccountId" = %s', contact["Email"], contact["AccountId"])
        assert twins == [{"n": 1}], "the deleted record duplicated a live contact"


def test_the_api_server_serves_the_seeded_org(postgres, tmp_path):
    """A client reads the seeded org through the real sandbox server, as the platform's extract will."""
    url = create_database(postgres, "sf_served")
    seed_org(url, TEST_WORLD, progress=QUIET)
    sandbox = SalesforceSandbox(tmp_path / "salesforce", url, free_port(), free_port())
    with pytest.MonkeyPatch.context() as patch:
        sandbox.start()
        patch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle()))
        try:
            login = sandbox.credentials()
            client = Salesforce(username=login.username, password=login.password,
                                security_token=login.security_token, proxies=sandbox.proxies(), version=API_VERSION)
            served = client.query_all("SELECT Id, Name, Tier__c, Owner.Name FROM Account")["records"]
            deleted = client.query_all("SELECT Id FROM Contact WHERE IsDeleted = true", include_deleted=True)
            new_task = client.Task.create({"Subject": "Follow-up", "Status": "Not Started",
                                           "WhatId": served[0]["Id"]})
        finally:
            sandbox.stop()
    assert {r["Id"] for r in served} == {r["Id"] for r in rows(url, 'select "Id" from sf."Account"')}
    owners = {r["Name"] for r in rows(url, 'select "Name" from sf."User"')}
    assert all(r["Owner"]["Name"] in owners for r in served)
    assert deleted["totalSize"] == len(rows(url, 'select 1 from sf."Contact" where "IsDeleted"')) > 0
    seeded_tasks = rows(url, 'select "Id" from sf."Task" where "Id" <> %s', new_task["id"])
    assert new_task["id"] > max(t["Id"] for t in seeded_tasks), "records created later get Ids after the seeded ones"
    integration = rows(url, 'select count(*) as n from sf."User" where "Username" = %s', INTEGRATION_USERNAME)
    assert integration == [{"n": 1}], "the server logged in as the seeded integration user"
