"""The sandbox world's lifecycle: pure, consistent dates, and every event in the last twelve months."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from csops.sandbox.world import (
    PLANS_BY_CODE,
    SIGNED_BEFORE_START_DAYS,
    WorldParams,
    anniversary,
    in_service,
    plan_companies,
    plan_on,
)
from tests.conftest import TEST_WORLD

DEFAULT_WORLD = WorldParams(accounts=200, days=180, seed=42, end_date=date(2026, 11, 23))


def events(params: WorldParams) -> set[str]:
    """The lifecycle events the world holds in the twelve months before its end (and just after it)."""
    end, year_ago = params.end_date, params.end_date - timedelta(days=365)
    found = set()
    for c in plan_companies(params):
        if year_ago < c.contract_started_on <= end:
            found.add("new contract")
        if c.cancelled_on is not None:
            found.add("cancellation after the end" if c.cancelled_on > end else
                      "cancellation" if year_ago < c.cancelled_on else "old cancellation")
        if c.reactivated_on is not None and year_ago < c.reactivated_on <= end:
            found.add("reactivation")
        if c.plan_changed_on is not None and year_ago < c.plan_changed_on <= end:
            found.add(c.plan_change)
        if (c.plan_change == "upgrade"
                and end < c.plan_changed_on <= end + timedelta(days=SIGNED_BEFORE_START_DAYS)):
            found.add("upgrade won before the end, starting after it")
    return found


EVERY_EVENT = {"new contract", "cancellation", "cancellation after the end", "reactivation", "upgrade", "downgrade",
               "upgrade won before the end, starting after it"}


@pytest.mark.parametrize("params", [
    TEST_WORLD, DEFAULT_WORLD, replace(TEST_WORLD, seed=1), replace(TEST_WORLD, seed=2, end_date=date(2028, 2, 29)),
    replace(DEFAULT_WORLD, seed=3, end_date=date(2025, 1, 6)), replace(TEST_WORLD, accounts=10, days=30, seed=5),
], ids=str)
def test_every_event_is_in_the_last_twelve_months(params):
    assert events(params) >= EVERY_EVENT


def test_a_world_is_a_pure_function_of_its_params():
    assert plan_companies(TEST_WORLD) == plan_companies(TEST_WORLD)
    assert plan_companies(replace(TEST_WORLD, seed=8)) != plan_companies(TEST_WORLD)


@pytest.mark.parametrize("params", [TEST_WORLD, DEFAULT_WORLD], ids=str)
def test_lifecycle_dates_are_consistent(params):
    end = params.end_date
    for c in plan_companies(params):
        assert (c.cancelled_on is not None) == (c.persona == "churn_bound"), c
        if c.cancelled_on is not None:
            years = c.cancelled_on.year - c.contract_started_on.year
            assert years >= 1 and anniversary(c.contract_started_on, years) == c.cancelled_on, "a renewal anniversary"
            assert end - timedelta(days=335) <= c.cancelled_on <= end + timedelta(days=60)
            assert in_service(c, c.cancelled_on) and not in_service(c, c.cancelled_on + timedelta(days=1))
        if c.reactivated_on is not None:
            assert timedelta(days=60) < c.reactivated_on - c.cancelled_on <= timedelta(days=183)
            assert c.reactivated_on <= end - timedelta(days=15)
            assert in_service(c, c.reactivated_on) and in_service(c, end)
        if c.plan_changed_on is not None:
            before, after = c.plan_changed_on - timedelta(days=1), c.plan_changed_on
            assert (plan_on(c, before), plan_on(c, after)) == (c.plan_code, c.new_plan_code)
            step = PLANS_BY_CODE[c.new_plan_code].plan_id - PLANS_BY_CODE[c.plan_code].plan_id
            assert step == (1 if c.plan_change == "upgrade" else -1), "one plan up or down"
            assert c.contract_started_on < c.plan_changed_on and c.cancelled_on is None
        else:
            assert plan_on(c, end) == c.plan_code
