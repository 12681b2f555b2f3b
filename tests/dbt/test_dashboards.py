"""The four dashboard marts on the built test world: each dashboard's questions asked of its mart and answered
again by an independent query on the marts and staging models it is built from (or on the seed CSVs), so a
wrong join, filter, date window or aggregation in a dashboard mart fails here. A last test rebuilds the
dashboards as of an earlier run date and checks they read only what was known by then."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from csops import settings
from tests.dbt.warehouse import RUN_DATE, dbt

LAST_CLOSED_MONTH = date(2026, 10, 1)
RUN_MONTH = RUN_DATE.replace(day=1)
WEEK_START = RUN_DATE - timedelta(days=6)
QBR_WINDOW_AFTER = date(2026, 8, 20)  # three months before the run date: a QBR counts when later than this
TOKYO_DATE = "({} at time zone 'Asia/Tokyo')::date"
RANK = {"Green": 3, "Yellow": 2, "Red": 1}
SEEDS = settings.dbt_project_dir() / "seeds"


def query(warehouse: str, sql: str, params=()) -> list[dict]:
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        return connection.execute(sql, params).fetchall()


def by(rows: list[dict], key: str) -> dict:
    keyed = {row[key]: row for row in rows}
    assert len(keyed) == len(rows), f"{key} is not unique"
    return keyed


def share(part: int, whole: int) -> Decimal | None:
    return round(Decimal(part) / whole, 6) if whole else None


def target_in_force(kpi_key: str, programme_year: int) -> Decimal:
    """The kpi_targets seed's target for a programme year: that year's (or an earlier year's) row, else the
    standing row without a year, read from the CSV."""
    with (SEEDS / "kpi" / "kpi_targets.csv").open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["kpi_key"] == kpi_key]
    by_year = sorted((int(row["programme_year"]), row) for row in rows
                     if row["programme_year"] and int(row["programme_year"]) <= programme_year)
    chosen = by_year[-1][1] if by_year else next(row for row in rows if not row["programme_year"])
    return Decimal(chosen["target_value"])


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    return url


@pytest.fixture(scope="module")
def health_today(warehouse) -> dict:
    return by(query(warehouse, "select * from marts.fct_health_scores where score_date = %s", (RUN_DATE,)),
              "company_id")


# --- Executive ------------------------------------------------------------------------------------------------


def test_executive_revenue_is_the_revenue_marts_month_by_month(warehouse):
    """NRR (monthly and trailing twelve months), gross churn, expansion and MRR of every closed month are
    fct_revenue_monthly's; the open month (the run date's) has no revenue figures."""
    dashboard = by(query(warehouse, "select * from marts.dash_executive_monthly"), "month_start")
    revenue = query(warehouse, "select * from marts.fct_revenue_monthly")
    assert {row["month_start"] for row in revenue} == {m for m, row in dashboard.items() if row["is_closed_month"]}
    for month in revenue:
        row = dashboard[month["month_start"]]
        for column in ("nrr", "nrr_t12m", "grr", "grr_t12m", "gross_churn_rate", "gross_churn_rate_t12m",
                       "expansion_rate", "expansion_rate_t12m", "expansion_mrr", "churn_mrr", "contraction_mrr"):
            assert row[column] == month[column], (month["month_start"], column)
        assert row["mrr"] == month["closing_mrr"] and row["customers"] == month["customers_at_end"]
    assert [m for m, row in dashboard.items() if row["is_last_closed_month"]] == [LAST_CLOSED_MONTH]
    current = dashboard[RUN_MONTH]
    assert not current["is_closed_month"] and current["nrr"] is None and current["mrr"] is None
    # the test world's last closed month has MRR and a trailing-twelve-month cohort
    assert dashboard[LAST_CLOSED_MONTH]["nrr_t12m"] is not None and dashboard[LAST_CLOSED_MONTH]["mrr"] > 0


def test_executive_targets_are_the_programme_years(warehouse):
    """Every closed month from the programme's start carries Year 1's NRR, gross churn and expansion targets
    (read from the seed CSV); months before it carry none."""
    start = date(2026, 4, 1)  # var kpi_programme_start; the test world's history is all in Year 1
    for row in query(warehouse, "select * from marts.dash_executive_monthly where is_closed_month"):
        year = 1 if row["month_start"] >= start else None
        assert row["programme_year"] == year, row["month_start"]
        for kpi_key in ("nrr_t12m", "gross_churn_rate_t12m", "expansion_rate_t12m"):
            expected = target_in_force(kpi_key, 1) if year else None
            assert row[f"{kpi_key}_target"] == expected, (row["month_start"], kpi_key)


def test_executive_health_mix_is_the_last_scored_day_of_each_month(warehouse):
    """Green, Yellow and Red shares per month are counted on the month's last scored day of
    fct_health_scores; the Green and Red shares of closed months equal the Green and Red ratio KPIs."""
    scores = query(warehouse, "select score_date, health_status from marts.fct_health_scores")
    last_day: dict[date, date] = {}
    for row in scores:
        month = row["score_date"].replace(day=1)
        last_day[month] = max(last_day.get(month, row["score_date"]), row["score_date"])
    dashboard = by(query(warehouse, "select * from marts.dash_executive_monthly"), "month_start")
    assert {m for m, row in dashboard.items() if row["health_scored_on"]} == set(last_day)
    assert last_day[RUN_MONTH] == RUN_DATE
    for month, day in last_day.items():
        statuses = Counter(row["health_status"] for row in scores if row["score_date"] == day)
        with_status = sum(n for status, n in statuses.items() if status)
        row = dashboard[month]
        assert row["health_scored_on"] == day
        assert (row["green_companies"], row["yellow_companies"], row["red_companies"]) == \
            (statuses["Green"], statuses["Yellow"], statuses["Red"]), month
        assert (row["green_share"], row["yellow_share"], row["red_share"]) == \
            (share(statuses["Green"], with_status), share(statuses["Yellow"], with_status),
             share(statuses["Red"], with_status)), month
    kpis = {(row["month_start"], row["kpi_key"]): row["actual"] for row in query(
        warehouse, "select month_start, kpi_key, actual from marts.fct_kpi_monthly "
                   "where kpi_key in ('green_ratio', 'red_ratio')")}
    assert kpis
    for (month, kpi_key), actual in kpis.items():
        assert dashboard[month][kpi_key.replace("ratio", "share")] == actual, (month, kpi_key)


def test_executive_cmrr_and_cs_originated_revenue(warehouse):
    """CMRR (the sum of fct_cmrr) sits on the last closed month only; CS-originated revenue is the Upsell and
    Cross-sell opportunities won in each month, recounted from staging."""
    dashboard = by(query(warehouse, "select * from marts.dash_executive_monthly"), "month_start")
    cmrr = query(warehouse, "select sum(cmrr) as cmrr from marts.fct_cmrr")[0]["cmrr"]
    assert dashboard[LAST_CLOSED_MONTH]["cmrr"] == cmrr
    assert all(row["cmrr"] is None for month, row in dashboard.items() if month != LAST_CLOSED_MONTH)
    won = defaultdict(lambda: [0, Decimal(0)])
    for row in query(warehouse, "select close_date, amount_jpy from staging.stg_salesforce__opportunities "
                                "where is_won and opportunity_type in ('Upsell', 'Cross-sell') and close_date <= %s",
                     (RUN_DATE,)):
        won[row["close_date"].replace(day=1)][0] += 1
        won[row["close_date"].replace(day=1)][1] += row["amount_jpy"]
    assert won, "the test world wins expansion deals"
    for month, row in dashboard.items():
        deals, amount = won.get(month, (0, Decimal(0)))
        assert (row["cs_originated_deals_won"], row["cs_originated_annual_amount_jpy"]) == (deals, amount), month
        assert row["cs_originated_mrr"] == round(amount / 12, 2)


# --- CS Manager -----------------------------------------------------------------------------------------------


def test_cs_manager_portfolio_and_health_per_csm(warehouse, health_today):
    """Per CSM: the companies, the Green/Yellow/Red counts (the Red list) and MRR under management are
    fct_health_scores' rows on the run date for that CSM and their last closed month's MRR; the team row
    sums every company."""
    manager = by(query(warehouse, "select * from marts.dash_cs_manager"), "csm_key")
    mrr = {row["company_id"]: row["closing_mrr"] for row in query(
        warehouse, "select company_id, closing_mrr from marts.fct_mrr_company_monthly where month_start = %s",
        (LAST_CLOSED_MONTH,))}
    portfolios = defaultdict(list)
    for company in health_today.values():
        portfolios[company["csm_user_id"] or "unassigned"].append(company)
        portfolios["team"].append(company)
    assert set(manager) == set(portfolios) and len(portfolios) >= 4  # three CSMs and the team in the world
    for csm_key, companies in portfolios.items():
        row = manager[csm_key]
        statuses = Counter(company["health_status"] for company in companies)
        assert row["companies"] == len(companies), csm_key
        assert (row["green_companies"], row["yellow_companies"], row["red_companies"]) == \
            (statuses["Green"], statuses["Yellow"], statuses["Red"]), csm_key
        assert row["mrr_under_management"] == sum(mrr.get(c["company_id"], Decimal(0)) for c in companies)
        assert row["is_team_total"] == (csm_key == "team")
    assert manager["team"]["red_companies"] > 0


def test_cs_manager_transitions_qbrs_proposals_and_tasks(warehouse, health_today):
    """This week's status changes come from fct_health_scores (seven days ending on the run date); the QBR rate
    counts Tier 1 and 2 customers with a QBR event in three months; proposals and open overdue tasks are
    recounted from staging; the proposal target is the seed's per CSM, × the CSMs for the team."""
    manager = by(query(warehouse, "select * from marts.dash_cs_manager"), "csm_key")
    csm_of = {company_id: row["csm_user_id"] or "unassigned" for company_id, row in health_today.items()}
    account_company = {row["account_id"]: row["company_id"] for row in query(
        warehouse, "select account_id, company_id from intermediate.int_accounts_mapped_to_companies")}

    def per_csm(company_ids) -> Counter:
        counts = Counter(csm_of[c] for c in company_ids if c in csm_of)
        counts["team"] = sum(counts.values())
        return counts

    transitions = query(warehouse, "select company_id, previous_health_status, health_status "
                                   "from marts.fct_health_scores where status_transition is not null "
                                   "and score_date between %s and %s", (WEEK_START, RUN_DATE))
    worsened = [row for row in transitions if RANK[row["previous_health_status"]] > RANK[row["health_status"]]]
    tiers = {row["company_id"]: row["tier"]
             for row in query(warehouse, "select company_id, tier from marts.dim_companies")}
    qbr = {account_company.get(row["account_id"]) for row in query(
        warehouse, "select account_id from staging.stg_salesforce__events where is_qbr "
                   "and activity_date > %s and activity_date <= %s", (QBR_WINDOW_AFTER, RUN_DATE))}
    tier_1_2 = [c for c in health_today if tiers[c] in ("Tier 1", "Tier 2")]
    proposals = [account_company.get(row["account_id"]) for row in query(
        warehouse, f"select account_id from staging.stg_salesforce__opportunities "
                   f"where opportunity_type in ('Upsell', 'Cross-sell') "
                   f"and {TOKYO_DATE.format('created_at')} between %s and %s", (RUN_MONTH, RUN_DATE))]
    tasks = query(warehouse, f"select account_id, activity_date from staging.stg_salesforce__tasks "
                             f"where {TOKYO_DATE.format('created_at')} <= %s and not is_completed", (RUN_DATE,))
    overdue = [account_company.get(row["account_id"]) for row in tasks if row["activity_date"] < RUN_DATE]
    expected = {
        "status_transitions_7d": per_csm(row["company_id"] for row in transitions),
        "status_worsened_7d": per_csm(row["company_id"] for row in worsened),
        "tier_1_2_companies": per_csm(tier_1_2),
        "tier_1_2_with_qbr": per_csm(c for c in tier_1_2 if c in qbr),
        "expansion_proposals_mtd": per_csm(proposals),
        "open_tasks": per_csm(account_company.get(row["account_id"]) for row in tasks),
        "overdue_tasks": per_csm(overdue),
    }
    for column, counts in expected.items():
        for csm_key, row in manager.items():
            assert row[column] == counts[csm_key], (column, csm_key)
    team = manager["team"]
    assert team["status_transitions_7d"] > 0 and team["overdue_tasks"] > 0 and team["tier_1_2_companies"] > 0
    assert team["qbr_rate_tier_1_2"] == share(team["tier_1_2_with_qbr"], team["tier_1_2_companies"])
    per_csm_target = target_in_force("expansion_proposals_per_csm", 1)
    csms = [key for key in manager if key not in ("team", "unassigned")]
    assert all(manager[key]["expansion_proposals_target"] == per_csm_target for key in csms)
    assert team["expansion_proposals_target"] == per_csm_target * len(csms)
    assert team["qbr_rate_tier_1_2_target"] == target_in_force("qbr_rate_tier_1_2", 1)


# --- CSM Individual -------------------------------------------------------------------------------------------


def test_csm_individual_has_every_scored_company_once_with_its_score_and_trend(warehouse, health_today):
    """One row per company in fct_health_scores on the run date, no other; its status, score, days in status,
    reasons and renewal are that row's; the scores 7 and 30 days ago are those dates' rows."""
    individual = query(warehouse, "select * from marts.dash_csm_individual")
    assert sorted(row["company_id"] for row in individual) == sorted(health_today)
    earlier = {(row["company_id"], row["score_date"]): row["total_score"] for row in query(
        warehouse, "select company_id, score_date, total_score from marts.fct_health_scores "
                   "where score_date in (%s, %s)",
        (RUN_DATE - timedelta(days=7), RUN_DATE - timedelta(days=30)))}
    trends = Counter()
    for row in individual:
        health = health_today[row["company_id"]]
        for column in ("csm_user_id", "health_status", "total_score", "days_in_status", "status_since",
                       "top_reasons", "next_renewal_date"):
            assert row[column] == health[column], (row["company_id"], column)
        week = earlier.get((row["company_id"], RUN_DATE - timedelta(days=7)))
        month = earlier.get((row["company_id"], RUN_DATE - timedelta(days=30)))
        assert (row["total_score_7d_ago"], row["total_score_30d_ago"]) == (week, month), row["company_id"]
        if month is not None:
            assert row["score_change_30d"] == row["total_score"] - month
        trends[row["score_trend_30d"]] += 1
    assert sum(n for trend, n in trends.items() if trend) >= len(individual) // 2, trends


def test_csm_individual_signals_tasks_and_touchpoints(warehouse):
    """Active signals are fct_company_signals' on the run date; open tasks and their due dates, and the last
    touchpoint (a completed task, an event or a meeting note), are recounted from staging; MRR is the last
    closed month's."""
    individual = by(query(warehouse, "select * from marts.dash_csm_individual"), "company_id")
    signals = defaultdict(set)
    for row in query(warehouse, "select company_id, signal_key from marts.fct_company_signals"):
        signals[row["company_id"]].add(row["signal_key"])
    account_company = {row["account_id"]: row["company_id"] for row in query(
        warehouse, "select account_id, company_id from intermediate.int_accounts_mapped_to_companies")}
    due = defaultdict(list)
    for row in query(warehouse, f"select account_id, activity_date from staging.stg_salesforce__tasks "
                                f"where {TOKYO_DATE.format('created_at')} <= %s and not is_completed", (RUN_DATE,)):
        due[account_company.get(row["account_id"])].append(row["activity_date"])
    touches = defaultdict(set)
    for sql in (f"select account_id, coalesce({TOKYO_DATE.format('completed_at')}, activity_date) as day "
                f"from staging.stg_salesforce__tasks where is_completed",
                "select account_id, activity_date as day from staging.stg_salesforce__events",
                "select account_id, meeting_date as day from staging.stg_salesforce__meeting_notes"):
        for row in query(warehouse, sql):
            if row["day"] is not None and row["day"] <= RUN_DATE:
                touches[account_company.get(row["account_id"])].add(row["day"])
    mrr = {row["company_id"]: row["closing_mrr"] for row in query(
        warehouse, "select company_id, closing_mrr from marts.fct_mrr_company_monthly where month_start = %s",
        (LAST_CLOSED_MONTH,))}
    for company_id, row in individual.items():
        assert set(row["active_signals"]) == signals[company_id], company_id
        assert row["risk_signals"] + row["expansion_signals"] == len(signals[company_id])
        assert row["open_task_due_dates"] == sorted(due[company_id]), company_id
        assert row["overdue_tasks"] == sum(day < RUN_DATE for day in due[company_id])
        assert row["next_task_due_date"] == min((d for d in due[company_id] if d >= RUN_DATE), default=None)
        assert row["last_touchpoint_date"] == max(touches[company_id], default=None), company_id
        assert row["mrr"] == mrr.get(company_id)
    assert any(row["active_signals"] for row in individual.values())
    assert any(row["open_task_due_dates"] for row in individual.values())


# --- Customer 360 ---------------------------------------------------------------------------------------------


def test_customer_360_identity_revenue_and_health(warehouse, health_today):
    """One row per company of dim_companies with its keys and match status; MRR is fct_mrr_company_monthly's
    last closed month and its change against twelve months earlier; health now, with the category
    sub-scores and reasons, is fct_health_scores' on the run date (none for a company not scored)."""
    c360 = by(query(warehouse, "select * from marts.dash_customer_360"), "company_id")
    companies = by(query(warehouse, "select * from marts.dim_companies"), "company_id")
    assert set(c360) == set(companies)
    months = by(query(warehouse, "select * from marts.fct_mrr_company_monthly where month_start = %s",
                      (LAST_CLOSED_MONTH,)), "company_id")
    for company_id, row in c360.items():
        company = companies[company_id]
        for column in ("account_id", "tenant_id", "board_client_id", "match_status", "tier", "touch_model",
                       "csm_user_id", "renewal_date", "contract_start_date", "current_plan_code", "is_customer"):
            assert row[column] == company[column], (company_id, column)
        month = months.get(company_id)
        assert row["mrr_month_start"] == LAST_CLOSED_MONTH
        assert row["mrr"] == (month["closing_mrr"] if month else None), company_id
        if month:
            assert row["mrr_change_12m"] == month["closing_mrr"] - month["mrr_12_months_ago"]
        health = health_today.get(company_id)
        for column in ("health_status", "total_score", "usage_score", "outcome_score", "relationship_score",
                       "contract_score", "top_reasons", "goal_achievement_rate", "active_goals"):
            assert row[column] == (health[column] if health else None), (company_id, column)
    assert {row["match_status"] for row in c360.values()} >= {"matched", "nexpro_only", "board_only"}


def test_customer_360_usage_people_nps_opportunities_and_data_quality(warehouse, health_today):
    """Usage windows are fct_tenant_daily_usage's on the run date; key persons agree with the health score's
    count; the last NPS answer, the open opportunities and the identity issues on the company's records are
    recounted from staging and dq_identity_issues."""
    c360 = by(query(warehouse, "select * from marts.dash_customer_360"), "company_id")
    usage = by(query(warehouse, "select * from marts.fct_tenant_daily_usage where usage_date = %s", (RUN_DATE,)),
               "tenant_id")
    nps = {}
    for row in query(warehouse, "select tenant_id, nps_score, responded_date from staging.stg_nexpro__nps_responses "
                                "where responded_date <= %s order by responded_at, nps_response_id", (RUN_DATE,)):
        nps[row["tenant_id"]] = (row["nps_score"], row["responded_date"])
    account_company = {row["account_id"]: row["company_id"] for row in query(
        warehouse, "select account_id, company_id from intermediate.int_accounts_mapped_to_companies")}
    open_opportunities = Counter(account_company.get(row["account_id"]) for row in query(
        warehouse, f"select account_id from staging.stg_salesforce__opportunities "
                   f"where {TOKYO_DATE.format('created_at')} <= %s and (not is_closed or close_date > %s)",
        (RUN_DATE, RUN_DATE)))
    records = defaultdict(set)
    for account_id, company_id in account_company.items():
        records[company_id].add(("salesforce", account_id))
    for row in c360.values():
        if row["tenant_id"]:
            records[row["company_id"]].add(("nexpro", str(row["tenant_id"])))
        if row["board_client_id"]:
            records[row["company_id"]].add(("board", str(row["board_client_id"])))
    issues = Counter()
    for row in query(warehouse, "select source_system, record_id from marts.dq_identity_issues"):
        for company_id, keys in records.items():
            issues[company_id] += (row["source_system"], row["record_id"]) in keys
    for company_id, row in c360.items():
        day = usage.get(row["tenant_id"])
        for column in ("login_days_30d", "login_days_90d", "webinars_held_30d", "attendees_90d",
                       "feature_depth_tier_30d"):
            assert row[column] == (day[column] if day else None), (company_id, column)
        if company_id in health_today and health_today[company_id]["key_persons"] is not None:
            assert row["key_persons"] == health_today[company_id]["key_persons"], company_id
        assert (row["last_nps_score"], row["last_nps_date"]) == nps.get(row["tenant_id"], (None, None)), company_id
        assert row["open_opportunities"] == open_opportunities[company_id], company_id
        assert row["data_quality_issues"] == issues[company_id], company_id
    assert sum(row["open_opportunities"] for row in c360.values()) > 0
    assert sum(row["data_quality_issues"] for row in c360.values()) == len(query(
        warehouse, "select 1 from marts.dq_identity_issues")), "every identity issue shows on some company"


# --- As of an earlier run date ----------------------------------------------------------------------------------


def test_dashboards_rebuilt_as_of_an_earlier_day_read_only_what_was_known(warehouse, dbt_target):
    """Rebuilt as of a week earlier, the CSM dashboard lists that day's scored companies with that day's
    scores, a task completed since then is still open, and the Executive's months end with that day's."""
    earlier = RUN_DATE - timedelta(days=7)
    completed = dbt(warehouse, dbt_target, "run", "--select", "path:models/marts/dashboards", run_date=earlier)
    assert completed.returncode == 0, completed.stdout[-4000:]
    scored = {row["company_id"]: row["total_score"] for row in query(
        warehouse, "select company_id, total_score from marts.fct_health_scores where score_date = %s", (earlier,))}
    individual = query(warehouse, "select company_id, total_score, as_of_date, open_tasks "
                                  "from marts.dash_csm_individual")
    assert {row["company_id"]: row["total_score"] for row in individual} == scored
    assert {row["as_of_date"] for row in individual} == {earlier}
    account_company = {row["account_id"]: row["company_id"] for row in query(
        warehouse, "select account_id, company_id from intermediate.int_accounts_mapped_to_companies")}
    open_then = Counter(account_company.get(row["account_id"]) for row in query(
        warehouse, f"select account_id from staging.stg_salesforce__tasks "
                   f"where {TOKYO_DATE.format('created_at')} <= %(day)s "
                   f"and (not is_completed or {TOKYO_DATE.format('completed_at')} > %(day)s)", {"day": earlier}))
    completed_since = query(warehouse, f"select count(*) as n from staging.stg_salesforce__tasks "
                                       f"where {TOKYO_DATE.format('created_at')} <= %(day)s "
                                       f"and {TOKYO_DATE.format('completed_at')} > %(day)s", {"day": earlier})
    assert completed_since[0]["n"] > 0, "the test world completes tasks every week"
    assert {row["company_id"]: row["open_tasks"] for row in individual} == \
        {company_id: open_then[company_id] for company_id in scored}
    last_month = query(warehouse, "select max(month_start) as m, max(health_scored_on) as d "
                                  "from marts.dash_executive_monthly")[0]
    assert (last_month["m"], last_month["d"]) == (earlier.replace(day=1), earlier)
