"""The Nexpro sandbox world: deterministic, extendable, and its personas behave differently."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import psycopg

from csops.sandbox.nexpro.generator import build_world
from csops.sandbox.world import PERSONAS, plan_companies, write_manifest
from tests.conftest import TEST_WORLD, create_database

FINGERPRINT_TABLES = ("tenants", "users", "login_events", "webinars", "registrations", "viewing_sessions",
                      "feature_events", "nps_responses", "data_transfer_daily")


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
