"""The health score on the built test world: every score, total and status follows the rubric seeds (recomputed
here in Python from the CSV files); a past date rebuilt gives the rows it had; a daily run adds its date with
the same history a full build computes; an analyst's edit of the rubric CSVs changes the scores with no SQL
edit, and a broken rubric or an override naming no company fails with the row named."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from csops import settings
from csops.local_stack import dbt_environment
from tests.conftest import VENV_BIN
from tests.dbt.warehouse import RUN_DATE, dbt

SEEDS = settings.dbt_project_dir() / "seeds"
INDICATORS = ("login_days", "webinars_held", "feature_depth", "goal_achievement", "attendee_trend", "touchpoints",
              "key_persons", "renewal")
# the mart column holding the measure each threshold names (feature depth is shown as its tier's name)
MART_MEASURES = {"login_days_30d": "login_days_30d", "webinars_held_30d": "webinars_held_30d",
                 "feature_depth_rank_30d": "feature_depth_tier_30d", "goal_achievement_rate": "goal_achievement_rate",
                 "attendee_trend_ratio": "attendee_trend_ratio", "touchpoints_30d": "touchpoints_30d",
                 "touchpoints_60d": "touchpoints_60d", "key_persons": "key_persons",
                 "months_to_renewal": "months_to_renewal"}
# what is rewritten by whichever run writes a row, not part of its content
LINEAGE = {"computed_for_run_date", "computed_at"}
HEALTH_MODELS = "path:models/intermediate/health+"


def dbt_with_vars(warehouse: str, target: Path, *arguments: str, variables: dict):
    """`dbt <arguments>` like tests.dbt.warehouse.dbt, with more dbt vars than the run date."""
    project = settings.dbt_project_dir()
    return subprocess.run(
        [str(VENV_BIN / "dbt"), *arguments, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--vars", json.dumps(variables, default=str)],
        env={**dbt_environment(warehouse), "PATH": "/usr/bin:/bin", "CS_AIRFLOW_RUN_ID": "dbt-test"},
        capture_output=True, text=True)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class Rubric:
    """The rubric as the seed CSVs hold it, applied in Python."""

    def __init__(self, seeds: Path) -> None:
        health = seeds / "health"
        indicators = read_csv(health / "health_indicators.csv")
        self.weights = {row["indicator_key"]: Decimal(row["weight"]) for row in indicators}
        self.categories = {row["indicator_key"]: row["category"] for row in indicators}
        self.thresholds = {}
        for row in read_csv(health / "health_thresholds.csv"):
            self.thresholds.setdefault(row["indicator_key"], []).append(row)
        self.bands = sorted(((Decimal(row["min_total_score"]), row["health_status"])
                             for row in read_csv(health / "health_status_bands.csv")), reverse=True)
        self.low_coverage_below = next(Decimal(row["setting_value"]) for row in read_csv(health / "health_settings.csv")
                                       if row["setting_key"] == "low_coverage_below")
        tiers = read_csv(seeds / "feature_tiers.csv")
        self.tier_rank = {row["feature_tier"]: row["feature_tier_rank"] for row in tiers}

    def measure(self, row: dict, name: str):
        value = row[MART_MEASURES[name]]
        return Decimal(self.tier_rank[value]) if name == "feature_depth_rank_30d" and value is not None else value

    def score(self, row: dict, indicator: str) -> int | None:
        rules = self.thresholds[indicator]
        values = [self.measure(row, rule["measure"]) for rule in rules if rule["measure"]]
        if all(value is None for value in values):
            return None
        reached = [int(rule["score"]) for rule in rules if rule["min_value"]
                   and self.measure(row, rule["measure"]) is not None
                   and Decimal(self.measure(row, rule["measure"])) >= Decimal(rule["min_value"])]
        return max(reached) if reached else min(int(rule["score"]) for rule in rules)

    def status(self, total: Decimal | None) -> str | None:
        if total is None:
            return None
        return next(status for minimum, status in self.bands if total >= minimum)


def two_decimals(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def mart_rows(warehouse: str, where: str = "true", params: tuple = ()) -> list[dict]:
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        return connection.execute(f"select * from marts.fct_health_scores where {where} "
                                  "order by score_date, company_id", params).fetchall()


def without(rows: list[dict], columns: set[str]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in columns} for row in rows]


def test_every_score_total_and_status_follows_the_rubric_seeds(built_warehouse):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-4000:]
    rubric = Rubric(SEEDS)
    rows = mart_rows(warehouse)
    assert rows and max(row["score_date"] for row in rows) == RUN_DATE
    statuses = set()
    for row in rows:
        scores = {indicator: rubric.score(row, indicator) for indicator in INDICATORS}
        assert scores == {indicator: row[f"{indicator}_score"] for indicator in INDICATORS}, row
        present = {indicator: score for indicator, score in scores.items() if score is not None}
        coverage = sum((rubric.weights[indicator] for indicator in present), Decimal(0))
        assert row["coverage"] == coverage, row
        assert row["is_low_coverage"] == (coverage < rubric.low_coverage_below)
        total = (two_decimals(sum(score * rubric.weights[indicator] for indicator, score in present.items()) / coverage)
                 if coverage else None)
        assert row["total_score"] == total, row
        assert row["computed_status"] == rubric.status(total), row
        for category in ("usage", "outcome", "relationship", "contract"):
            weights = {i: rubric.weights[i] for i in present if rubric.categories[i] == category}
            expected = (two_decimals(sum(present[i] * w for i, w in weights.items()) / sum(weights.values()))
                        if weights else None)
            assert row[f"{category}_score"] == expected, (category, row)
        if row["override_status"] is None:
            assert row["health_status"] == row["computed_status"]
        below = [indicator for indicator, score in present.items() if score < 3 and rubric.weights[indicator] > 0]
        assert (row["top_reasons"] is None) == (not below), row
        if row["top_reasons"]:
            assert len(row["top_reasons"].split("; ")) == min(3, len(below))
        statuses.add(row["computed_status"])
    assert {"Green", "Yellow", "Red"} <= statuses, "the test world shows every status"


def test_history_columns_agree_with_the_previous_scored_date(built_warehouse):
    warehouse, _completed, _results = built_warehouse
    previous = {}
    for row in mart_rows(warehouse):
        before = previous.get(row["company_id"])
        assert row["previous_health_status"] == (before["health_status"] if before else None)
        changed = before is None or before["health_status"] != row["health_status"]
        assert row["days_in_status"] == (1 if changed else before["days_in_status"] + 1)
        assert row["status_since"] == (row["score_date"] if changed else before["status_since"])
        assert row["status_transition"] == (
            f"{before['health_status']}→{row['health_status']}" if before and changed else None)
        previous[row["company_id"]] = row


def test_the_shipped_overrides_apply_within_their_dates_and_are_kept_in_their_history(built_warehouse):
    warehouse, _completed, _results = built_warehouse
    overrides = read_csv(SEEDS / "health" / "health_status_overrides.csv")
    assert overrides
    for override in overrides:
        rows = mart_rows(warehouse, "company_id = %s", (override["company_id"],))
        assert rows, f"the example override names {override['company_id']}, a customer of the test world"
        for row in rows:
            in_force = override["set_on"] <= row["score_date"].isoformat() <= override["expires_on"]
            assert row["override_status"] == (override["status"] if in_force else None)
            assert row["health_status"] == (override["status"] if in_force else row["computed_status"])
        with psycopg.connect(warehouse) as connection:
            history = connection.execute(
                "select override_status, is_active, computed_status_on_set_on from marts.fct_health_status_overrides "
                "where company_id = %s and set_on = %s", (override["company_id"], override["set_on"])).fetchall()
        assert history == [(override["status"], override["set_on"] <= RUN_DATE.isoformat() <= override["expires_on"],
                            next(row["computed_status"] for row in rows if row["score_date"].isoformat()
                                 == override["set_on"]))]


def test_rebuilding_a_past_date_rewrites_that_date_only_with_the_same_rows(built_warehouse, dbt_target):
    warehouse, _completed, _results = built_warehouse
    past = RUN_DATE - timedelta(days=7)
    before = mart_rows(warehouse)
    completed = dbt(warehouse, dbt_target, "build", "--select", HEALTH_MODELS, run_date=past)
    assert completed.returncode == 0, completed.stdout[-4000:]
    after = mart_rows(warehouse)
    assert without([r for r in after if r["score_date"] == past], LINEAGE) == without(
        [r for r in before if r["score_date"] == past], LINEAGE)
    assert {r["computed_for_run_date"] for r in after if r["score_date"] == past} == {past}
    assert [r for r in after if r["score_date"] != past] == [r for r in before if r["score_date"] != past]


def test_a_daily_run_adds_its_date_with_the_history_a_full_build_computes(built_warehouse, dbt_target):
    warehouse, _completed, _results = built_warehouse
    next_day = RUN_DATE + timedelta(days=1)
    before = mart_rows(warehouse)
    # "@": also every parent of the models downstream. dbt replaces a view by dropping the old one with cascade,
    # so a parent rebuilt here drops a dependent view that "+...+" would not recreate (the KPI onboarding view).
    completed = dbt(warehouse, dbt_target, "run", "--select", "@path:models/intermediate/health",
                    run_date=next_day)
    assert completed.returncode == 0, completed.stdout[-4000:]
    after = mart_rows(warehouse)
    added = [row for row in after if row["score_date"] == next_day]
    assert added and len(after) == len(before) + len(added)
    customers_on_run_date = {row["company_id"] for row in before if row["score_date"] == RUN_DATE}
    assert {row["company_id"] for row in added} <= customers_on_run_date
    # A full build for the next day over the same first date (one more day of history) computes the same rows.
    history_days = (next_day - min(row["score_date"] for row in before)).days + 1
    completed = dbt_with_vars(warehouse, dbt_target, "run", "--select", HEALTH_MODELS, "--full-refresh",
                              variables={"run_date": next_day, "health_history_days": history_days})
    assert completed.returncode == 0, completed.stdout[-4000:]
    rebuilt = mart_rows(warehouse)
    assert without([r for r in rebuilt if r["score_date"] == next_day], LINEAGE) == without(added, LINEAGE)
    assert any(row["status_transition"] for row in rebuilt), "the test world has status changes to compare"


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the dbt project that dbt() uses, for an analyst's edit of the rubric."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    monkeypatch.setenv("CS_DBT_PROJECT_DIR", str(copy))
    return copy


def edit_csv(path: Path, change) -> None:
    rows = read_csv(path)
    for row in rows:
        change(row)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_an_analysts_rubric_edit_changes_the_scores_without_sql(built_warehouse, project_copy, dbt_target):
    warehouse, _completed, _results = built_warehouse
    before = {(r["company_id"], r["score_date"]): r for r in mart_rows(warehouse, "score_date = %s", (RUN_DATE,))}
    # Green now needs 20 login days, and webinars weigh 0.15 and key persons 0.15.
    health = project_copy / "seeds" / "health"
    edit_csv(health / "health_thresholds.csv", lambda row: row.update(min_value="20") if (
        row["indicator_key"], row["score"]) == ("login_days", "3") else None)
    edit_csv(health / "health_indicators.csv", lambda row: row.update(weight={
        "webinars_held": "0.15", "key_persons": "0.15"}.get(row["indicator_key"], row["weight"])))
    completed = dbt(warehouse, dbt_target, "build", "--select", "path:seeds/health", HEALTH_MODELS, "--full-refresh")
    assert completed.returncode == 0, completed.stdout[-4000:]
    after = {(r["company_id"], r["score_date"]): r for r in mart_rows(warehouse, "score_date = %s", (RUN_DATE,))}
    assert after.keys() == before.keys()
    moved = [key for key, row in before.items() if 10 <= (row["login_days_30d"] or 0) < 20]
    assert moved, "the test world has tenants with 10 to 19 login days"
    assert {after[key]["login_days_score"] for key in moved} == {2}
    assert {before[key]["login_days_score"] for key in moved} == {3}
    assert any(after[key]["total_score"] != before[key]["total_score"] for key in before)
    rubric = Rubric(project_copy / "seeds")
    for row in after.values():
        assert row["login_days_score"] == rubric.score(row, "login_days")


def test_a_broken_rubric_or_an_unknown_company_fails_naming_the_row(built_warehouse, project_copy, dbt_target):
    warehouse, _completed, _results = built_warehouse
    health = project_copy / "seeds" / "health"
    edit_csv(health / "health_indicators.csv", lambda row: row.update(weight="0.25") if (
        row["indicator_key"] == "renewal") else None)
    edit_csv(health / "health_thresholds.csv", lambda row: row.update(measure="login_dayz_30d") if (
        row["indicator_key"], row["score"]) == ("login_days", "2") else None)
    with (health / "health_status_overrides.csv").open("a", encoding="utf-8") as handle:
        handle.write("nexpro:99999,,Red,left the platform,csm2@csops.sandbox,2026-11-01,2026-11-30\n")
    completed = dbt(warehouse, dbt_target, "build", "--select", "path:seeds/health", "path:tests/health",
                    "int_health_status_overrides", "int_health_measures")
    assert completed.returncode != 0
    assert "assert_health_weights_sum_to_one" in completed.stdout
    assert "Warning in test assert_health_overrides_name_known_companies" in completed.stdout
    assert "assert_health_thresholds_name_known_measures" in completed.stdout
    with psycopg.connect(warehouse) as connection:
        weights = connection.execute(
            "select indicator_key, problem from (" + compiled_test(dbt_target, "assert_health_weights_sum_to_one")
            + ") as failures").fetchall()
        measures = connection.execute(
            "select indicator_key, problem from ("
            + compiled_test(dbt_target, "assert_health_thresholds_name_known_measures") + ") as failures").fetchall()
        overrides = connection.execute(
            "select named_company_id, problem from ("
            + compiled_test(dbt_target, "assert_health_overrides_name_known_companies") + ") as failures").fetchall()
    assert ("renewal", "health_indicators.csv: the weights add up to 1.2000, not 1; change weights (this row has "
            "0.2500) so that they add up to 1") in weights
    assert measures == [("login_days", "health_thresholds.csv: indicator login_days score 2 names measure "
                         "login_dayz_30d, which is not one of: attendee_trend_ratio, feature_depth_rank_30d, "
                         "goal_achievement_rate, key_persons, login_days_30d, months_to_renewal, touchpoints_30d, "
                         "touchpoints_60d, webinars_held_30d")]
    assert overrides == [("nexpro:99999", "health_status_overrides.csv: the row for company_id nexpro:99999 set on "
                          "2026-11-01: no such company; use a company_id of fct_health_scores or an Account Id of "
                          "Salesforce")]


def compiled_test(target: Path, name: str) -> str:
    return next(target.glob(f"compiled/csops/tests/health/{name}.sql")).read_text()
