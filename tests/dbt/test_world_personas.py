"""The world makes sense: the health score the test world gets per persona (world.plan_companies) is the one its
behaviour deserves. Thriving companies are mostly Green, a churn-bound company is Red in the weeks before it
churns, a stalled onboarding is never Green, and no persona is split near 50/50 between its expected status
and the others (a rubric or a world that cannot tell the personas apart)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

import psycopg

from csops.sandbox.world import plan_companies
from tests.conftest import TEST_WORLD
from tests.dbt.warehouse import RUN_DATE

LAST_DAYS = 30
WEEKS_BEFORE_CHURN = 21
# persona: the computed statuses its behaviour deserves
EXPECTED = {
    "thriving": {"Green"},
    "expanding": {"Green"},
    "steady": {"Green", "Yellow"},
    "declining": {"Yellow", "Red"},
    "churn_bound": {"Yellow", "Red"},
    "onboarding_stalled": {"Yellow", "Red"},
}


def statuses_by_company(warehouse: str) -> dict[str, dict]:
    with psycopg.connect(warehouse) as connection:
        rows = connection.execute("select company_id, score_date, computed_status from marts.fct_health_scores "
                                  "where company_id like 'nexpro:%%'").fetchall()
    by_company = defaultdict(dict)
    for company_id, score_date, status in rows:
        by_company[company_id][score_date] = status
    return by_company


def shares(statuses: list[str]) -> dict[str, float]:
    counts = Counter(statuses)
    return {status: count / len(statuses) for status, count in counts.items()}


def test_each_persona_gets_the_status_its_behaviour_deserves(built_warehouse):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-4000:]
    by_company = statuses_by_company(warehouse)
    recent = defaultdict(list)
    for company in plan_companies(TEST_WORLD):
        days = by_company.get(f"nexpro:{company.nexpro_tenant_id}", {})
        recent[company.persona] += [status for day, status in days.items() if day > RUN_DATE - timedelta(LAST_DAYS)]
    mix = {persona: shares(statuses) for persona, statuses in recent.items() if statuses}
    assert set(mix) >= {"thriving", "steady", "onboarding_stalled"}, mix
    assert mix["thriving"].get("Green", 0) >= 0.7, mix
    assert mix["onboarding_stalled"].get("Green", 0) == 0, mix
    for persona, persona_mix in mix.items():
        expected = sum(share for status, share in persona_mix.items() if status in EXPECTED[persona])
        # clearly its expected status: neither near 50/50 nor mostly another
        assert expected > 0.65, f"{persona} has its expected status {sorted(EXPECTED[persona])} on only " \
                                f"{expected:.0%} of company-days: {persona_mix}"


def test_a_churn_bound_company_is_red_in_the_weeks_before_it_churns(built_warehouse):
    warehouse, _completed, _results = built_warehouse
    by_company = statuses_by_company(warehouse)
    checked = {}
    for company in plan_companies(TEST_WORLD):
        if company.persona != "churn_bound" or company.cancelled_on is None:
            continue
        # the weeks before its last day of service; for a company leaving after the end, those of them scored
        last = company.cancelled_on
        days = by_company.get(f"nexpro:{company.nexpro_tenant_id}", {})
        weeks = [status for day, status in days.items() if last - timedelta(WEEKS_BEFORE_CHURN) < day <= last]
        if weeks:
            checked[company.company_key] = shares(weeks)
    assert checked, "the test world has churn-bound companies cancelling within the scored dates"
    for company_key, mix in checked.items():
        assert mix.get("Red", 0) >= 0.7, (company_key, mix)
