"""The Nexpro sandbox world: deterministic, extendable, and its personas behave differently."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import psycopg

from csops.sandbox.nexpro.generator import build_world
from csops.sandbox.world import PERSONAS, PLANS_BY_CODE, in_service, plan_companies, plan_on, write_manifest
from tests.conftest import TEST_WORLD, create_database

FINGERPRINT_TABLES = ("tenants", "tenant_plans", "users", "login_events", "webinars", "registrations",
                      "viewing_sessions", "feature_events", "nps_responses", "data_transfer_daily")


def fingerprint(url) -> dict[str, str]:
    """An order-independent digest of each table's content (updated_at included)."""
    with psycopg.connect(url) as connection:
        return {table: connection.execute(
            f"select count(*)::text || ':' || coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '') "
            f"from {table} as t").fetchone()[0] for table in FINGERPRINT_TABLES}


def test_same_parameters_give_the_same_world(postgres, nexpro_template):
    other = create_database(postgres, "nexpro_again")
    build_world(other, TEST_WORLD, progress=lambda _m: None)
    assert fingerprint(other) == fingerprint(postgres.url(nexpro_template))


def test_another_seed_gives_another_world(postgres, nexpro_template):
    other = create_database(postgres, "nexpro_seed")
    build_world(other, replace(TEST_WORLD, seed=TEST_WORLD.seed + 1), progress=lambda _m: None)
    assert fingerprint(other)["login_events"] != fingerprint(postgres.url(nexpro_template))["login_events"]


def test_a_later_end_date_appends_the_missing_days(nexpro_url):
    with psycopg.connect(nexpro_url) as connection:
        before = connection.execute("select count(*), max(login_event_id) from login_events").fetchone()
    later = replace(TEST_WORLD, end_date=TEST_WORLD.end_date + timedelta(days=2))

    outcome = build_world(nexpro_url, later, progress=lambda _m: None)

    assert outcome["action"] == "extended"
    assert outcome["world"] == TEST_WORLD, "the world keeps the plan it was generated with"
    with psycopg.connect(nexpro_url) as connection:
        after = connection.execute("select count(*), min(login_event_id) filter (where logged_in_at > %s) "
                                   "from login_events", (TEST_WORLD.end_date + timedelta(days=1),)).fetchone()
        transfer_days = connection.execute("select count(distinct usage_date) from data_transfer_daily").fetchone()
    assert after[0] > before[0]
    assert after[1] > before[1], "new events get new ids after the existing ones"
    assert transfer_days[0] == TEST_WORLD.days + 2
    assert build_world(nexpro_url, later, progress=lambda _m: None)["action"] == "reused"


def test_extending_day_by_day_equals_generating_to_that_day(postgres, nexpro_template):
    """Cancellations, reactivations and plan changes falling in the appended days are applied as updates."""
    early, later = TEST_WORLD.end_date - timedelta(days=40), TEST_WORLD.end_date + timedelta(days=45)
    changes = [day for c in plan_companies(TEST_WORLD) for day in (c.cancelled_on, c.reactivated_on, c.plan_changed_on)
               if day is not None]
    assert any(early < day <= TEST_WORLD.end_date for day in changes), "a change before the end is appended"
    assert any(TEST_WORLD.end_date < day <= later for day in changes), "a change after the end is appended"
    extended = create_database(postgres, "nexpro_extended")
    assert build_world(extended, TEST_WORLD, progress=lambda _m: None, through=early)["action"] == "generated"
    assert build_world(extended, TEST_WORLD, progress=lambda _m: None)["action"] == "extended"
    assert fingerprint(extended) == fingerprint(postgres.url(nexpro_template))

    build_world(extended, replace(TEST_WORLD, end_date=later), progress=lambda _m: None)
    direct = create_database(postgres, "nexpro_direct")
    build_world(direct, TEST_WORLD, progress=lambda _m: None, through=later)
    assert fingerprint(extended) == fingerprint(direct)


def test_tenants_follow_the_world_lifecycle(postgres, nexpro_template):
    companies = plan_companies(TEST_WORLD)
    end = TEST_WORLD.end_date
    with psycopg.connect(postgres.url(nexpro_template)) as connection:
        tenants = {row[0]: row[1:] for row in connection.execute(
            "select tenant_id, status, cancelled_on, plan_id, (updated_at at time zone 'Asia/Tokyo')::date "
            "from tenants")}
        periods = {}
        for tenant_id, plan_id, started, ended in connection.execute(
                "select tenant_id, plan_id, started_on, ended_on from tenant_plans order by tenant_id, started_on"):
            periods.setdefault(tenant_id, []).append((plan_id, started, ended))
        active_days = set(connection.execute(
            "select tenant_id, usage_date from data_transfer_daily union "
            "select tenant_id, (logged_in_at at time zone 'Asia/Tokyo')::date from login_events").fetchall())
    seen = set()
    for company in companies:
        status, cancelled_on, plan_id, updated_on = tenants[company.nexpro_tenant_id]
        history = periods[company.nexpro_tenant_id]
        assert plan_id == PLANS_BY_CODE[plan_on(company, end)].plan_id
        if company.cancelled_on is not None and company.cancelled_on <= end and company.reactivated_on is None:
            seen.add("cancelled")
            assert (status, cancelled_on, updated_on) == ("cancelled", company.cancelled_on, company.cancelled_on)
            assert history[-1][2] == company.cancelled_on + timedelta(days=1), "the plan period ends with service"
        elif company.reactivated_on is not None and company.reactivated_on <= end:
            seen.add("reactivated")
            assert (status, cancelled_on, updated_on) == ("active", None, company.reactivated_on)
            assert [(p[1], p[2]) for p in history] == [
                (company.contract_started_on, company.cancelled_on + timedelta(days=1)), (company.reactivated_on, None)]
            assert any(t == company.nexpro_tenant_id and d >= company.reactivated_on for t, d in active_days), \
                "usage resumes after the reactivation"
        else:
            assert (status, cancelled_on) == ("active", None)
            seen.add("cancelling" if company.cancelled_on else "active")
        if company.plan_changed_on is not None and company.plan_changed_on <= end:
            seen.add(company.plan_change)
            assert history == [(PLANS_BY_CODE[company.plan_code].plan_id, company.contract_started_on,
                                company.plan_changed_on),
                               (PLANS_BY_CODE[company.new_plan_code].plan_id, company.plan_changed_on, None)]
            assert updated_on >= company.plan_changed_on
        day = TEST_WORLD.start_date
        while day <= end:
            if (company.nexpro_tenant_id, day) in active_days:
                assert in_service(company, day), f"{company.company_key} recorded activity on {day}, out of service"
            day += timedelta(days=1)
    assert seen >= {"cancelled", "reactivated", "cancelling", "upgrade", "downgrade"}


def test_personas_tell_apart_in_the_last_30_days(nexpro_template, postgres):
    companies = {company.nexpro_tenant_id: company for company in plan_companies(TEST_WORLD)}
    assert {company.persona for company in companies.values()} == set(PERSONAS), "every persona is present"
    since = TEST_WORLD.end_date - timedelta(days=29)
    with psycopg.connect(postgres.url(nexpro_template)) as connection:
        webinars = dict(connection.execute(
            "select tenant_id, count(*) from webinars where status = 'held' and scheduled_start_at >= %s "
            "group by 1", (since,)).fetchall())
        login_days = dict(connection.execute(
            "select tenant_id, count(distinct (logged_in_at at time zone 'Asia/Tokyo')::date) from login_events "
            "where logged_in_at >= %s group by 1", (since,)).fetchall())

    def average(metric, persona):
        members = [tenant for tenant, company in companies.items() if company.persona == persona]
        return sum(metric.get(tenant, 0) for tenant in members) / len(members)

    assert average(webinars, "thriving") > 3 * average(webinars, "churn_bound")
    assert average(webinars, "expanding") > average(webinars, "steady")
    assert average(login_days, "thriving") >= 10 > average(login_days, "onboarding_stalled")
    assert average(webinars, "onboarding_stalled") < 1


def test_manifest_lists_every_company_with_its_keys(tmp_path):
    companies = plan_companies(TEST_WORLD)
    path = write_manifest(tmp_path / "manifest.json", TEST_WORLD, companies)
    manifest = json.loads(path.read_text())
    assert manifest["params"]["seed"] == TEST_WORLD.seed
    assert len(manifest["companies"]) == TEST_WORLD.accounts
    first = manifest["companies"][0]
    assert set(first) >= {"company_key", "nexpro_tenant_id", "board_client_id", "company_name", "persona",
                          "contract_started_on", "plan_code"}
    assert len({company["company_name"] for company in manifest["companies"]}) == TEST_WORLD.accounts


def test_attendee_scale_thins_the_attendees_only_and_is_part_of_the_world(postgres, nexpro_template):
    thinned = replace(TEST_WORLD, attendee_scale=0.25)
    other = create_database(postgres, "nexpro_thinned")
    assert build_world(other, thinned, progress=lambda _m: None)["action"] == "generated"
    full, thin = fingerprint(postgres.url(nexpro_template)), fingerprint(other)
    # logins come before the webinars in each company-day's random stream; tenants and users are planned
    for table in ("tenants", "tenant_plans", "users", "login_events"):
        assert thin[table] == full[table], table
    with psycopg.connect(other) as connection:
        registrations = connection.execute("select count(*) from registrations").fetchone()[0]
        webinars = connection.execute("select count(*) from webinars where status = 'held'").fetchone()[0]
        recorded = connection.execute("select attendee_scale from sandbox.world").fetchone()[0]
    full_registrations = int(full["registrations"].split(":")[0])
    assert webinars <= registrations < full_registrations * 0.5, "at least one registrant per held webinar"
    assert recorded == 0.25
    assert build_world(other, thinned, progress=lambda _m: None)["action"] == "reused"
    assert build_world(other, TEST_WORLD, progress=lambda _m: None)["action"] == "generated", (
        "another attendee_scale is another world")
