"""The KPI tree, the Tier matrix and the expansion and risk signals on the built test world.

KPIs are recomputed here from the raw copies of the sources (Salesforce, Nexpro) and the world's own plan, not
from the models under test; signals are checked against what the world makes its companies do (expanding
companies press on their limits, a cancelling company's key persons leave, stalled onboardings stall), and a
signal's started_on against a rerun of the models as of earlier days."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from csops import settings
from csops.local_stack import dbt_environment
from csops.sandbox.nexpro.generator import FEATURES_BY_TIER
from csops.sandbox.salesforce.seed import GROWTH_POTENTIAL, annual_value, identity_plan, tier
from csops.sandbox.world import contract_spans, in_service, plan_companies
from tests.conftest import TEST_WORLD, VENV_BIN
from tests.dbt.warehouse import RUN_DATE, dbt

LAST_CLOSED_MONTH = date(2026, 10, 1)
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
HISTORY_START = TEST_WORLD.start_date  # the first day of the world's product history
TOKYO_DATE = "({} at time zone 'Asia/Tokyo')::date"
COMPANIES = plan_companies(TEST_WORLD)
IDENTITY = identity_plan(TEST_WORLD, COMPANIES)


def dbt_with_vars(warehouse: str, target: Path, *arguments: str, **variables) -> subprocess.CompletedProcess:
    """`dbt <arguments>` with project vars beyond run_date (the shared helper passes run_date alone)."""
    project = settings.dbt_project_dir()
    variables = {"run_date": RUN_DATE.isoformat(), **{k: str(v) for k, v in variables.items()}}
    return subprocess.run(
        [str(VENV_BIN / "dbt"), *arguments, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--vars", json.dumps(variables)],
        env={**dbt_environment(warehouse), "PATH": "/usr/bin:/bin", "CS_AIRFLOW_RUN_ID": "dbt-test"},
        capture_output=True, text=True)


def rows(warehouse: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(warehouse) as connection:
        return connection.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    return url


def kpi(warehouse: str, kpi_key: str, month: date = LAST_CLOSED_MONTH) -> dict:
    found = rows(warehouse, "select actual, target, numerator, denominator, programme_year, is_on_target "
                            "from marts.fct_kpi_monthly where kpi_key = %s and month_start = %s", (kpi_key, month))
    assert found, f"no {kpi_key} row for {month}"
    actual, target, numerator, denominator, year, on_target = found[0]
    return {"actual": actual, "target": target, "numerator": numerator, "denominator": denominator,
            "programme_year": year, "is_on_target": on_target}


def company_of_account(warehouse: str) -> dict[str, str]:
    return dict(rows(warehouse, "select account_id, company_id from intermediate.int_accounts_mapped_to_companies"))


def customers_in(warehouse: str, month: date) -> set[str]:
    """Companies with MRR in the month (the revenue marts are checked against board in test_dbt_build)."""
    return {company for (company,) in rows(
        warehouse, "select company_id from marts.fct_mrr_company_monthly where month_start = %s and closing_mrr > 0",
        (month,))}


# --- Companies and the Tier matrix ---------------------------------------------------------------------------


def test_the_matrix_tier_is_the_one_salesforce_was_given(warehouse):
    """The sandbox org sets each account's Tier__c by the same matrix from its plan's value and its persona's
    growth potential: dim_companies must arrive at the same Tier, and a touch model per tier."""
    dim = {company_id: (tier_, touch, band) for company_id, tier_, touch, band in rows(
        warehouse, "select company_id, tier, touch_model, contract_value_band from marts.dim_companies")}
    touch_of = {"Tier 1": "high_touch", "Tier 2": "low_touch", "Tier 3": "tech_touch"}
    checked = 0
    for company in COMPANIES:
        if company.company_key == IDENTITY.without_account or company.company_key in IDENTITY.without_tenant_id:
            continue
        expected = tier(annual_value(company, RUN_DATE), GROWTH_POTENTIAL[company.persona])
        tier_, touch, _band = dim[f"nexpro:{company.nexpro_tenant_id}"]
        assert (tier_, touch) == (expected, touch_of[expected]), company
        checked += 1
    assert checked >= 12
    # The tenant without any account has no growth potential, hence no Tier.
    lost = next(c for c in COMPANIES if c.company_key == IDENTITY.without_account)
    assert dim[f"nexpro:{lost.nexpro_tenant_id}"][0] is None
    assert not rows(warehouse, "select 1 from marts.dim_companies where is_salesforce_tier_out_of_date")


def test_tier_mix_adds_up_to_the_customers(warehouse):
    mix = rows(warehouse, "select tier, customers, share_of_customers from marts.fct_tier_mix")
    customers = rows(warehouse, "select count(*) from marts.dim_companies where is_customer")[0][0]
    assert sum(count for _tier, count, _share in mix) == customers
    assert abs(sum(share for *_rest, share in mix) - 1) < Decimal("0.00001")
    in_service_now = [c for c in COMPANIES if c.company_key != IDENTITY.without_account and in_service(c, RUN_DATE)]
    tier_1 = [c for c in in_service_now
              if tier(annual_value(c, RUN_DATE), GROWTH_POTENTIAL[c.persona]) == "Tier 1"]
    assert dict((t, n) for t, n, _share in mix)["Tier 1"] == len(tier_1)


# --- KPIs recomputed from the sources --------------------------------------------------------------------


def test_expansion_proposals_and_close_rate_match_salesforce(warehouse):
    first, last = OCTOBER
    created = rows(warehouse, f"""
        select count(*) from raw_salesforce.opportunity
        where not isdeleted and _deleted_at is null and type in ('Upsell', 'Cross-sell')
            and {TOKYO_DATE.format('createddate')} between %s and %s""", (first, last))[0][0]
    won, closed = rows(warehouse, """
        select count(*) filter (where iswon), count(*) from raw_salesforce.opportunity
        where not isdeleted and _deleted_at is null and type in ('Upsell', 'Cross-sell') and isclosed
            and closedate between %s and %s""", (first, last))[0]
    owners = dict(rows(warehouse, "select company_id, csm_user_id from intermediate.int_companies_identified"))
    csms = {owners[company] for company in customers_in(warehouse, LAST_CLOSED_MONTH) if owners.get(company)}
    proposals = kpi(warehouse, "expansion_proposals_per_csm")
    assert created > 0 and len(csms) == 3
    assert (proposals["numerator"], proposals["denominator"]) == (created, len(csms))
    assert proposals["actual"] == round(Decimal(created) / len(csms), 2)
    assert proposals["target"] == 5 and proposals["is_on_target"] is (proposals["actual"] >= 5)
    close = kpi(warehouse, "proposal_close_rate")
    assert closed > 0
    assert (close["numerator"], close["denominator"]) == (won, closed)
    assert close["actual"] == round(Decimal(won) / closed, 6)


def test_outcome_definition_rate_matches_salesforce_goals(warehouse):
    _first, last = OCTOBER
    company_of = company_of_account(warehouse)
    goals = rows(warehouse, f"""
        select account__c from raw_salesforce.outcome_goal__c
        where not isdeleted and _deleted_at is null
            and {TOKYO_DATE.format('createddate')} <= %s and (end_date__c is null or end_date__c >= %s)""",
                 (last, last))
    customers = customers_in(warehouse, LAST_CLOSED_MONTH)
    with_goal = {company_of[account] for (account,) in goals} & customers
    definition = kpi(warehouse, "outcome_definition_rate")
    assert with_goal
    assert (definition["numerator"], definition["denominator"]) == (len(with_goal), len(customers))
    assert definition["target"] == Decimal("0.6")  # Year 1's figure


def first_days(warehouse: str) -> dict[int, dict[str, list[date]]]:
    """Per tenant, from the raw Nexpro copy: Tokyo dates with a login, with a held webinar that had attendees,
    and with an advanced feature used."""
    advanced = list(FEATURES_BY_TIER["advanced"])
    found: dict[int, dict[str, list[date]]] = defaultdict(lambda: defaultdict(list))
    for tenant, day in rows(warehouse, f"select distinct tenant_id, {TOKYO_DATE.format('logged_in_at')} "
                                       "from raw_nexpro.login_events where _deleted_at is null order by 2"):
        found[tenant]["login"].append(day)
    for tenant, day in rows(warehouse, f"""
            select distinct webinars.tenant_id, {TOKYO_DATE.format('webinars.started_at')}
            from raw_nexpro.webinars as webinars
            join raw_nexpro.registrations as registrations on registrations.webinar_id = webinars.webinar_id
            where webinars.status = 'held' and registrations.attended and webinars._deleted_at is null
                and registrations._deleted_at is null
            order by 2"""):
        found[tenant]["webinar"].append(day)
    for tenant, day in rows(warehouse, f"select distinct tenant_id, {TOKYO_DATE.format('occurred_at')} "
                                       "from raw_nexpro.feature_events where _deleted_at is null "
                                       "and feature_key = any(%s) order by 2", (advanced,)):
        found[tenant]["advanced"].append(day)
    return found


def test_onboarding_completion_and_time_to_first_value_from_the_product_data(warehouse):
    """Companies whose current contract started within the product history: onboarding is complete when, within
    30 days, a webinar was held with attendees, users logged in on 5 days, an advanced feature was tried and an
    outcome goal was set; the first value event is the first webinar held with attendees."""
    days = first_days(warehouse)
    company_of = company_of_account(warehouse)
    goal_dates = defaultdict(list)
    for account, created in rows(warehouse, f"select account__c, {TOKYO_DATE.format('createddate')} "
                                            "from raw_salesforce.outcome_goal__c where not isdeleted order by 2"):
        goal_dates[company_of[account]].append(created)
    deadlines, completed, first_value = [], [], defaultdict(list)
    for company in COMPANIES:
        start = contract_spans(company)[-1][0]
        if start < HISTORY_START or company.company_key in IDENTITY.without_tenant_id:
            continue
        company_id = f"nexpro:{company.nexpro_tenant_id}"
        seen = days[company.nexpro_tenant_id]
        after = {kind: [day for day in seen[kind] if day >= start] for kind in ("login", "webinar", "advanced")}
        if after["webinar"]:
            first_value[after["webinar"][0].replace(day=1)].append((after["webinar"][0] - start).days)
        deadline = start + timedelta(days=30)
        if not OCTOBER[0] <= deadline <= OCTOBER[1]:
            continue
        deadlines.append(company_id)
        goals = goal_dates.get(company_id, [])
        met = (any(day <= deadline for day in after["webinar"]) and len(after["login"]) >= 5
               and after["login"][4] <= deadline and any(day <= deadline for day in after["advanced"])
               and bool(goals) and max(goals[0], start) <= deadline)
        if met:
            completed.append(company_id)
    assert deadlines, "the test world has companies whose onboarding window ended in October"
    onboarding = kpi(warehouse, "onboarding_completion_rate")
    assert (onboarding["numerator"], onboarding["denominator"]) == (len(completed), len(deadlines))
    september = date(2026, 9, 1)
    assert first_value[september]
    ttfv = kpi(warehouse, "time_to_first_value_days", september)
    assert (ttfv["numerator"], ttfv["denominator"]) == (sum(first_value[september]), len(first_value[september]))
    assert ttfv["target"] == 30 and ttfv["is_on_target"] is (ttfv["actual"] <= 30)


def test_revenue_kpis_are_the_trailing_twelve_months_of_the_revenue_mart(warehouse):
    nrr, churn, expansion = rows(warehouse, "select nrr_t12m, gross_churn_rate_t12m, expansion_rate_t12m "
                                            "from marts.fct_revenue_monthly where month_start = %s",
                                 (LAST_CLOSED_MONTH,))[0]
    assert kpi(warehouse, "nrr_t12m")["actual"] == nrr
    assert kpi(warehouse, "gross_churn_rate_t12m")["actual"] == churn
    assert kpi(warehouse, "expansion_rate_t12m")["actual"] == expansion
    assert kpi(warehouse, "nrr_t12m")["target"] == Decimal("1.05")
    assert kpi(warehouse, "gross_churn_rate_t12m")["is_on_target"] is (churn <= Decimal("0.12"))
    latest = rows(warehouse, "select max(month_start) from marts.fct_kpi_monthly")[0][0]
    assert latest == LAST_CLOSED_MONTH, "KPIs run through the last closed month"


KPI_TARGET_MODELS = "int_kpi_targets_in_force+"


def test_targets_switch_with_the_programme_year(warehouse, tmp_path):
    """With Year 1 starting in October 2025, October 2026 is Year 2 (NRR 115%) and September 2026 still Year 1
    (105%); with the default start (April 2026) both are Year 1 and March 2026 has no target."""
    # the targets in force per programme year are a view compiled with the programme start: rebuilt too
    completed = dbt_with_vars(warehouse, tmp_path, "run", "--select", KPI_TARGET_MODELS,
                              kpi_programme_start="2025-10-01")
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert (kpi(warehouse, "nrr_t12m")["programme_year"], kpi(warehouse, "nrr_t12m")["target"]) == (2, Decimal("1.15"))
    assert kpi(warehouse, "gross_churn_rate_t12m")["target"] == Decimal("0.08")
    september = kpi(warehouse, "nrr_t12m", date(2026, 9, 1))
    assert (september["programme_year"], september["target"]) == (1, Decimal("1.05"))
    completed = dbt(warehouse, tmp_path, "run", "--select", KPI_TARGET_MODELS)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert kpi(warehouse, "nrr_t12m")["target"] == Decimal("1.05")
    march = kpi(warehouse, "nrr_t12m", date(2026, 3, 1))
    assert (march["programme_year"], march["target"], march["is_on_target"]) == (None, None, None)


def test_green_and_red_ratio_are_the_status_mix_of_the_months_last_scored_day(warehouse):
    last_day = rows(warehouse, "select max(score_date) from marts.fct_health_scores where score_date <= %s",
                    (OCTOBER[1],))[0][0]
    assert last_day == OCTOBER[1]
    statuses = [status for (status,) in rows(
        warehouse, "select health_status from marts.fct_health_scores where score_date = %s "
                   "and health_status is not null", (last_day,))]
    green, red = kpi(warehouse, "green_ratio"), kpi(warehouse, "red_ratio")
    assert (green["numerator"], green["denominator"]) == (statuses.count("Green"), len(statuses))
    assert (red["numerator"], red["denominator"]) == (statuses.count("Red"), len(statuses))
    assert green["target"] == Decimal("0.5") and red["target"] == Decimal("0.05")  # Year 1; Red's standing figure
    assert red["is_on_target"] is (red["actual"] <= Decimal("0.05"))


# --- Signals ------------------------------------------------------------------------------------------------


def signals(warehouse: str) -> dict[tuple[str, str], tuple[str, date, str]]:
    return {(company, key): (kind, started, detail) for company, key, kind, started, detail in rows(
        warehouse, "select company_id, signal_key, signal_kind, started_on, detail from marts.fct_company_signals")}


def test_the_world_raises_its_signals(warehouse):
    active = signals(warehouse)
    kinds = defaultdict(set)
    for (company, key), (kind, started, _detail) in active.items():
        kinds[company].add((kind, key))
        assert started <= RUN_DATE
    for company in COMPANIES:
        company_id = f"nexpro:{company.nexpro_tenant_id}"
        if company.company_key in IDENTITY.without_tenant_id or not in_service(company, RUN_DATE):
            continue
        if company.persona == "expanding":
            assert any(kind == "expansion" for kind, _key in kinds[company_id]), company
        start = contract_spans(company)[-1][0]
        if company.persona == "onboarding_stalled" and (RUN_DATE - start).days >= 21:
            assert ("risk", "onboarding_stalled") in kinds[company_id], company
        if company.cancelled_on is not None and company.cancelled_on > RUN_DATE:  # notice given, leaving soon
            assert ("risk", "key_person_lost") in kinds[company_id], company
    assert not {company for company, _key in active} - {c for (c,) in rows(
        warehouse, "select company_id from marts.dim_companies where is_customer")}, "only customers have signals"


def run_start(days: set[date], through: date) -> date:
    """The first day of the unbroken run of `days` that ends on `through`."""
    assert through in days
    start = through
    while start - timedelta(days=1) in days:
        start -= timedelta(days=1)
    return start


def test_started_on_is_the_first_day_of_the_current_run(warehouse):
    """Recomputed in Python from the daily usage mart and the rule seed: usage at 80% of a plan limit."""
    threshold = rows(warehouse, "select threshold from reference.signal_rules "
                                "where signal_key = 'usage_near_plan_limit'")[0][0]
    near = defaultdict(set)
    for company, day in rows(warehouse, """
            select companies.company_id, usage.usage_date
            from marts.fct_tenant_daily_usage as usage
            join marts.dim_companies as companies on companies.tenant_id = usage.tenant_id
            where usage.is_under_contract and (usage.webinar_limit_utilisation_30d >= %(t)s
                or usage.attendee_limit_utilisation_30d >= %(t)s or usage.storage_limit_utilisation >= %(t)s)""",
                             {"t": threshold}):
        near[company].add(day)
    active = {company: started for (company, key), (_kind, started, _detail) in signals(warehouse).items()
              if key == "usage_near_plan_limit"}
    assert set(active) == {company for company, days in near.items() if RUN_DATE in days}
    assert active
    for company, started in active.items():
        assert started == run_start(near[company], RUN_DATE), company


def test_key_person_lost_starts_on_the_day_the_contact_was_made_inactive(warehouse, tmp_path):
    """The cancelling company's key persons leave in its last 60 days. The signal starts the day the first of
    them was made inactive (within 30 days of the next), and a run as of the day before does not see it: each
    day uses only facts dated on or before it."""
    cancelling = [c for c in COMPANIES if c.cancelled_on is not None and c.cancelled_on > RUN_DATE]
    assert cancelling
    company_id = f"nexpro:{cancelling[0].nexpro_tenant_id}"
    company_of = company_of_account(warehouse)
    lost = sorted(day for account, day in rows(warehouse, f"""
        select accountid, {TOKYO_DATE.format('lastmodifieddate')} from raw_salesforce.contact
        where not isdeleted and _deleted_at is null and key_person__c and not is_active__c""")
                  if company_of[account] == company_id)
    assert lost
    holding = {lost_on + timedelta(days=k) for lost_on in lost for k in range(30)}
    started = run_start(holding, RUN_DATE)
    assert signals(warehouse)[company_id, "key_person_lost"][1] == started
    for as_of, expected in ((started - timedelta(days=1), None), (started, started)):
        completed = dbt(warehouse, tmp_path, "run", "--select", "+fct_company_signals", run_date=as_of)
        assert completed.returncode == 0, completed.stdout[-3000:]
        found = rows(warehouse, "select started_on, as_of_date from marts.fct_company_signals "
                                "where company_id = %s and signal_key = 'key_person_lost'", (company_id,))
        assert found == ([] if expected is None else [(expected, as_of)]), as_of
    # back to the run date: the tests after this one read the signals as of it
    completed = dbt(warehouse, tmp_path, "run", "--select", "+fct_company_signals")
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_renewal_soon_while_not_green_follows_the_health_history(warehouse):
    """Renewal less than 90 days away while Yellow or Red, day by day from fct_health_scores; started_on is the
    first day of the current run."""
    holding = defaultdict(set)
    for company, day in rows(warehouse, """
            select company_id, score_date from marts.fct_health_scores
            where health_status in ('Yellow', 'Red') and next_renewal_date >= score_date
                and next_renewal_date - score_date < 90"""):
        holding[company].add(day)
    active = {company: started for (company, key), (_kind, started, _detail) in signals(warehouse).items()
              if key == "renewal_soon_not_green"}
    assert active, "the test world has a customer renewing soon that is not Green"
    assert set(active) == {company for company, days in holding.items() if RUN_DATE in days}
    for company, started in active.items():
        assert started == run_start(holding[company], RUN_DATE), company


# --- The seeds' own checks ----------------------------------------------------------------------------------


def test_a_bad_rubric_row_fails_with_the_row_and_the_fix(warehouse, tmp_path):
    with psycopg.connect(warehouse) as connection:
        connection.execute("update reference.signal_rules set signal_kind = 'expansion' "
                           "where signal_key = 'usage_drop'")
        connection.execute("update reference.kpi_targets set direction = 'above' "
                           "where kpi_key = 'nrr_t12m' and programme_year = 2")
        connection.execute("delete from reference.tier_matrix where contract_value_band = 'Low' "
                           "and growth_potential = 'High'")
    completed = dbt(warehouse, tmp_path, "test", "--store-failures", "--select",
                    "assert_signal_rules_are_valid", "assert_kpi_targets_are_valid", "assert_tier_matrix_is_complete")
    assert completed.returncode != 0
    assert rows(warehouse, "select signal_key, problem, fix from dbt_test__audit.assert_signal_rules_are_valid") == [
        ("usage_drop", "signal_kind is 'expansion'", "write risk")]
    assert set(rows(warehouse, "select kpi_key, programme_year, problem "
                               "from dbt_test__audit.assert_kpi_targets_are_valid")) == {
        ("nrr_t12m", 2, "direction is 'above'"),
        ("nrr_t12m", None, "its rows disagree on kpi_name, kpi_branch, unit or direction")}
    assert rows(warehouse, "select contract_value_band, growth_potential, fix "
                           "from dbt_test__audit.assert_tier_matrix_is_complete") == [
        ("Low", "High", "add a row to tier_matrix.csv for band Low and growth potential High")]
