"""`dbt build` on real data: the test world's Nexpro database, Salesforce org and board billing, extracted by
the real loaders (Salesforce over HTTPS with simple-salesforce, board over its HTTP API), then every model
and test. The revenue marts are checked against MRR computed here, independently, from the board
sandbox's own tables."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from csops.sandbox.board.schema import TIMING_RECURRING
from csops.sandbox.board.seed import OPTIONS, add_months, is_annual
from csops.sandbox.salesforce.seed import seeded_identity_issues
from csops.sandbox.world import PLANS_BY_CODE, plan_companies
from tests.conftest import TEST_WORLD
from tests.dbt.warehouse import RUN_DATE, dbt

# The last closed month: the month before the run date's (its invoices are drafted near its end).
LAST_CLOSED_MONTH = add_months(RUN_DATE.replace(day=1), -1)


def test_build_is_green_with_data_and_unit_tests(built_warehouse):
    _warehouse, completed, results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    kinds = {result["unique_id"].split(".")[0] for result in results}
    assert {"model", "test", "unit_test", "seed"} <= kinds
    # an exposure (a dashboard) has nothing to build: dbt build reports it as no-op
    failed = [(result["unique_id"], result["status"]) for result in results
              if result["status"] not in ("success", "pass")
              and not (result["unique_id"].startswith("exposure.") and result["status"] == "no-op")]
    assert not failed, failed


def test_results_are_recorded_for_the_run_summary(built_warehouse):
    warehouse, completed, results = built_warehouse
    assert completed.returncode == 0
    with psycopg.connect(warehouse) as connection:
        recorded = connection.execute("select count(*) from ops.dbt_node_results "
                                      "where airflow_run_id = 'dbt-test'").fetchone()[0]
    nodes = [result for result in results if not result["unique_id"].startswith("operation.")]  # the hook itself
    assert recorded == len(nodes)


def test_usage_mart_is_anchored_on_the_run_date_and_separates_personas(built_warehouse):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    with psycopg.connect(warehouse) as connection:
        assert connection.execute("select max(usage_date) from marts.fct_tenant_daily_usage").fetchone()[0] == RUN_DATE
        rows = connection.execute(
            "select tenant_id, login_days_30d, webinars_held_30d, feature_depth_tier_30d, "
            "webinar_limit_utilisation_30d from marts.fct_tenant_daily_usage where usage_date = %s",
            (RUN_DATE,)).fetchall()
        source_logins = connection.execute(
            "select tenant_id, count(distinct (logged_in_at at time zone 'Asia/Tokyo')::date) "
            "from raw_nexpro.login_events where (logged_in_at at time zone 'Asia/Tokyo')::date between %s and %s "
            "group by 1", (RUN_DATE - timedelta(days=29), RUN_DATE)).fetchall()
    persona = {company.nexpro_tenant_id: company.persona for company in plan_companies(TEST_WORLD)}
    by_tenant = {row[0]: row for row in rows}
    assert len(by_tenant) == TEST_WORLD.accounts
    for tenant_id, login_days in source_logins:
        assert by_tenant[tenant_id][1] == login_days, "login_days_30d counts distinct Tokyo dates in [d-29, d]"

    def mean(column, name):
        values = [row[column] for tenant, row in by_tenant.items() if persona[tenant] == name]
        return sum(values) / len(values)

    assert mean(2, "thriving") > mean(2, "churn_bound")
    assert mean(1, "thriving") > mean(1, "onboarding_stalled")
    assert mean(4, "expanding") > mean(4, "steady")
    assert {row[3] for tenant, row in by_tenant.items() if persona[tenant] == "thriving"} == {"advanced"}


def board_client_ids(board) -> set[int]:
    with psycopg.connect(board.database_url) as connection:
        return {row[0] for row in connection.execute("select id from board.clients")}


def test_identity_and_data_quality_show_exactly_the_seeded_imperfections(built_warehouse, board):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    seeded = seeded_identity_issues(TEST_WORLD)
    with psycopg.connect(warehouse) as connection:
        issues = {(issue_type, record_id) for issue_type, record_id in connection.execute(
            "select issue_type, record_id from marts.dq_identity_issues").fetchall()}
        companies = connection.execute(
            "select company_id, account_id, tenant_id, board_client_id, match_status "
            "from intermediate.int_companies_identified").fetchall()
        suggestions = set(connection.execute(
            "select record_id, related_record_id from marts.dq_identity_issues "
            "where issue_type in ('account_without_tenant_key', 'account_without_board_key', "
            "'board_client_without_account') and related_record_id is not null").fetchall())
    without_key = seeded["accounts_without_tenant_id"]
    no_board_key = seeded["account_without_board_client_id"]
    # Clients no account names: the one whose account lacks its board key, the company without any
    # account, and the clients board bills that the world's companies are not.
    world_clients = {company.board_client_id for company in plan_companies(TEST_WORLD)}
    unnamed_clients = ({no_board_key["board_client_id"], seeded["company_without_account"]["board_client_id"]}
                       | (board_client_ids(board) - world_clients))
    assert len(unnamed_clients) >= 3
    expected = {
        *(("account_without_tenant_key", account["account_id"]) for account in without_key),
        ("duplicate_tenant_key", seeded["duplicate_tenant"]["duplicate_account_id"]),
        ("tenant_key_not_found", seeded["dangling_tenant"]["account_id"]),
        ("tenant_without_account", str(seeded["company_without_account"]["tenant_id"])),
        # An account without its key leaves its tenant unclaimed too (the mart suggests the pair by name).
        *(("tenant_without_account", str(account["tenant_id"])) for account in without_key),
        ("account_without_board_key", no_board_key["account_id"]),
        # The dangling account's board key names no client either.
        ("board_key_not_found", seeded["dangling_tenant"]["account_id"]),
        *(("board_client_without_account", str(client_id)) for client_id in unnamed_clients),
    }
    assert issues == expected
    assert suggestions == (
        {(account["account_id"], str(account["tenant_id"])) for account in without_key}
        | {(no_board_key["account_id"], str(no_board_key["board_client_id"])),
           (str(no_board_key["board_client_id"]), no_board_key["account_id"])})
    by_status = {}
    for _company_id, account_id, tenant_id, board_client_id, status in companies:
        key = {"salesforce_only": account_id, "board_only": board_client_id}.get(status, tenant_id)
        by_status.setdefault(status, set()).add(key)
    assert by_status["salesforce_only"] == ({account["account_id"] for account in without_key}
                                           | {seeded["dangling_tenant"]["account_id"]})
    assert by_status["nexpro_only"] == ({seeded["company_without_account"]["tenant_id"]}
                                        | {account["tenant_id"] for account in without_key})
    assert by_status["board_only"] == unnamed_clients
    # Every other tenant is one matched company: the duplicate account does not make a second one.
    assert len(by_status["matched"]) == TEST_WORLD.accounts - len(by_status["nexpro_only"])
    # Every board client belongs to exactly one company, so its revenue counts once.
    owners = [board_client_id for *_, board_client_id, _status in companies if board_client_id is not None]
    assert sorted(owners) == sorted(board_client_ids(board))


# --- Revenue, computed here from the board sandbox's own tables (its column names, not the API's) ------------


def service_months(start: date, end: date) -> list[date]:
    """The calendar months in which each month of service from `start` to `end` begins."""
    months, k = [], 0
    while add_months(start, k) <= end:
        months.append(add_months(start, k).replace(day=1))
        k += 1
    return months or [start.replace(day=1)]


def billed_by_client(board) -> tuple[dict, dict]:
    """(client, month) -> {'plan', 'option', 'paid'}: every invoice line, tax excluded, spread evenly over its
    service months; and client -> first billed month."""
    with psycopg.connect(board.database_url) as connection:
        lines = connection.execute("""
            select i.client_id, p.invoice_timing, i.service_period_start, i.service_period_end, d.description, d.amount
            from board.invoice_details as d
            join board.invoices as i on i.id = d.invoice_id
            join board.projects as p on p.id = i.project_id""").fetchall()
    billed = defaultdict(lambda: {"plan": Decimal(0), "option": Decimal(0), "paid": Decimal(0)})
    first = {}
    for client_id, timing, start, end, description, amount in lines:
        months = service_months(start, end)
        if timing != TIMING_RECURRING:
            kind = "paid"
        else:
            kind = "option" if description.startswith(tuple(name for name, _price in OPTIONS)) else "plan"
        for month in months:
            billed[client_id, month][kind] += Decimal(amount) / len(months)
        first[client_id] = min(first.get(client_id, months[0]), months[0])
    return billed, first


def month_range(first: date, last: date) -> list[date]:
    months = [first]
    while months[-1] < last:
        months.append(add_months(months[-1], 1))
    return months


@pytest.fixture(scope="module")
def expected_mrr(built_warehouse, board) -> dict[tuple[str, date], dict[str, Decimal]]:
    """(company_id, month) -> plan, option, mrr (each category at least 0) and paid services, for every month
    from the company's first billed month through the last closed month."""
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    company_of = company_of_client(warehouse)
    billed, first = billed_by_client(board)
    expected = {}
    for client_id, first_month in first.items():
        for month in month_range(first_month, LAST_CLOSED_MONTH) if first_month <= LAST_CLOSED_MONTH else []:
            amounts = billed.get((client_id, month), {"plan": Decimal(0), "option": Decimal(0), "paid": Decimal(0)})
            plan, option = max(amounts["plan"], Decimal(0)), max(amounts["option"], Decimal(0))
            expected[company_of[client_id], month] = {"plan": plan, "option": option, "mrr": plan + option,
                                                      "paid": amounts["paid"]}
    return expected


def company_of_client(warehouse: str) -> dict[int, str]:
    with psycopg.connect(warehouse) as connection:
        return dict(connection.execute("select board_client_id, company_id from intermediate.int_companies_identified "
                                       "where board_client_id is not null").fetchall())


def mart_rows(warehouse: str, query: str) -> list[dict]:
    with psycopg.connect(warehouse) as connection:
        cursor = connection.execute(query)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def close(a, b, tolerance=Decimal("0.05")) -> bool:
    return a is not None and b is not None and abs(Decimal(a) - Decimal(b)) <= tolerance


def test_mrr_per_company_month_is_what_board_billed_for_that_month(built_warehouse, expected_mrr):
    warehouse, _completed, _results = built_warehouse
    rows = mart_rows(warehouse, "select company_id, month_start, plan_mrr, option_mrr, closing_mrr, "
                                "paid_services_revenue from marts.fct_mrr_company_monthly")
    mart = {(row["company_id"], row["month_start"]): row for row in rows}
    assert set(mart) == set(expected_mrr), "one row per company from its first billed month to the last closed month"
    assert max(month for _company, month in mart) == LAST_CLOSED_MONTH
    wrong = [(key, mart[key], value) for key, value in expected_mrr.items()
             if not (close(mart[key]["plan_mrr"], value["plan"]) and close(mart[key]["option_mrr"], value["option"])
                     and close(mart[key]["closing_mrr"], value["mrr"])
                     and close(mart[key]["paid_services_revenue"], value["paid"]))]
    assert not wrong, wrong[:5]
    # The comparison covered what makes MRR more than a sum of invoices.
    assert any(value["option"] > 0 for value in expected_mrr.values())
    assert any(value["paid"] > 0 and value["mrr"] == 0 for value in expected_mrr.values()), \
        "paid services are revenue, not MRR (the board-only clients buy only those)"


def test_an_annual_prepaid_invoice_counts_a_twelfth_a_month(built_warehouse, board):
    warehouse, _completed, _results = built_warehouse
    with psycopg.connect(board.database_url) as connection:
        annual = connection.execute(
            "select client_id, service_period_start, subtotal from board.invoices "
            "where service_period_end >= service_period_start + interval '11 months' "
            "and service_period_start <= %s order by service_period_start limit 1", (LAST_CLOSED_MONTH,)).fetchone()
    if annual is None:
        pytest.skip("the test world has no annual prepaid invoice in its closed months")
    client_id, start, amount = annual
    rows = mart_rows(warehouse, f"""
        select m.month_start, m.closing_mrr from marts.fct_mrr_company_monthly as m
        join intermediate.int_companies_identified as c using (company_id)
        where c.board_client_id = {client_id} order by m.month_start""")
    months = {row["month_start"]: row["closing_mrr"] for row in rows}
    assert close(months[start.replace(day=1)], amount / 12), "1/12 in the invoice's first month, not all of it"


def test_monthly_kpis_match_the_definitions(built_warehouse, expected_mrr):
    """NRR, GRR and the trailing-twelve-month NRR of every month, from the independently computed MRR."""
    warehouse, _completed, _results = built_warehouse
    rows = mart_rows(warehouse, "select * from marts.fct_revenue_monthly order by month_start")
    assert rows[-1]["month_start"] == LAST_CLOSED_MONTH
    mrr = defaultdict(Decimal, {key: value["mrr"] for key, value in expected_mrr.items()})
    companies = {company for company, _month in expected_mrr}
    for row in rows:
        month = row["month_start"]
        previous, year_ago = add_months(month, -1), add_months(month, -12)
        base = [company for company in companies if mrr[company, previous] > 0]
        start = sum(mrr[company, previous] for company in base)
        assert close(row["opening_mrr"], start)
        assert close(row["closing_mrr"], sum(mrr[company, month] for company in companies))
        assert close(row["paid_services_revenue"],
                     sum(value["paid"] for (_company, m), value in expected_mrr.items() if m == month))
        assert row["customers_at_start"] == len(base)
        assert row["customers_lost"] == sum(1 for company in base if mrr[company, month] == 0)
        if start:
            assert close(row["nrr"], sum(mrr[company, month] for company in base) / start, Decimal("0.000001"))
            assert close(row["grr"], sum(min(mrr[company, month], mrr[company, previous]) for company in base) / start,
                         Decimal("0.000001"))
        cohort = [company for company in companies if mrr[company, year_ago] > 0]
        if cohort:
            then = sum(mrr[company, year_ago] for company in cohort)
            assert close(row["nrr_t12m"], sum(mrr[company, month] for company in cohort) / then, Decimal("0.000001"))
        else:
            assert row["nrr_t12m"] is None


def test_the_world_lifecycle_shows_as_movements(built_warehouse):
    """A cancellation is churn the month after the last day of service; a reactivation is reactivation
    MRR; a plan change is upsell or contraction; companies that gave notice or signed an upgrade that has
    not started move CMRR."""
    warehouse, _completed, _results = built_warehouse
    rows = mart_rows(warehouse, """
        select c.board_client_id, m.month_start, m.movement, m.churn_mrr, m.upsell_mrr, m.contraction_mrr,
            m.plan_mrr, m.opening_mrr, m.closing_mrr
        from marts.fct_mrr_company_monthly as m join intermediate.int_companies_identified as c using (company_id)""")
    movement = {(row["board_client_id"], row["month_start"]): row for row in rows}
    companies = plan_companies(TEST_WORLD)
    checked = defaultdict(int)
    for company in companies:
        client = company.board_client_id
        if company.cancelled_on and not is_annual(company, TEST_WORLD):
            churn_month = add_months(company.cancelled_on.replace(day=1), 1)
            if churn_month <= LAST_CLOSED_MONTH and (company.reactivated_on is None
                                                     or company.reactivated_on >= add_months(churn_month, 1)):
                row = movement[client, churn_month]
                assert row["movement"] == "churn" and row["churn_mrr"] == row["opening_mrr"] > 0, company
                checked["churn"] += 1
        if company.reactivated_on and company.reactivated_on.replace(day=1) <= LAST_CLOSED_MONTH:
            assert movement[client, company.reactivated_on.replace(day=1)]["movement"] == "reactivation", company
            checked["reactivation"] += 1
        if company.plan_changed_on and company.contract_started_on.replace(day=1) < company.plan_changed_on.replace(
                day=1) <= LAST_CLOSED_MONTH:
            row = movement[client, company.plan_changed_on.replace(day=1)]
            step = (PLANS_BY_CODE[company.new_plan_code].monthly_price_jpy
                    - PLANS_BY_CODE[company.plan_code].monthly_price_jpy)
            before = movement[client, add_months(company.plan_changed_on.replace(day=1), -1)]
            assert row["plan_mrr"] - before["plan_mrr"] == step, company
            if step > 0:
                assert row["upsell_mrr"] == step, company
            else:
                assert row["contraction_mrr"] > 0 and row["churn_mrr"] == 0 and row["closing_mrr"] > 0, company
            checked["upgrade" if step > 0 else "downgrade"] += 1
    # The world guarantees each event in the last twelve months.
    assert set(checked) == {"churn", "reactivation", "upgrade", "downgrade"}, checked

    cmrr = {row["company_id"]: row for row in mart_rows(warehouse, "select * from marts.fct_cmrr")}
    company_of = company_of_client(warehouse)
    notice_given = [c for c in companies if c.cancelled_on and c.cancelled_on >= LAST_CLOSED_MONTH
                    and c.board_client_id in company_of and company_of[c.board_client_id] in cmrr]
    assert notice_given, "the world has a company leaving at a renewal after the last closed month began"
    for company in notice_given:
        row = cmrr[company_of[company.board_client_id]]
        assert row["scheduled_cancellation_mrr"] == row["mrr"] > 0 and row["cmrr"] == 0, company
    upgrading = [c for c in companies if c.plan_changed_on and c.plan_changed_on >= RUN_DATE.replace(day=1)
                 and c.plan_change == "upgrade" and c.board_client_id in company_of]
    assert upgrading, "the world has an upgrade that starts after the last closed month"
    for company in upgrading:
        row = cmrr[company_of[company.board_client_id]]
        step = (PLANS_BY_CODE[company.new_plan_code].monthly_price_jpy
                - PLANS_BY_CODE[company.plan_code].monthly_price_jpy)
        assert row["won_not_started_mrr"] == step and row["cmrr"] == row["mrr"] + step, company


def test_source_freshness_is_the_last_successful_load(built_warehouse, dbt_target):
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    fresh = dbt(warehouse, dbt_target, "source", "freshness", run_id="fresh")
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    with psycopg.connect(warehouse, autocommit=True) as connection:
        # users was loaded three days ago and never since, though nothing in it changed more recently.
        connection.execute("update ops.extract_runs set finished_at = finished_at - interval '3 days' "
                           "where table_name = 'users'")
    stale = dbt(warehouse, dbt_target, "source", "freshness", run_id="stale")
    assert stale.returncode != 0, "a source past error_after fails the freshness check"
    with psycopg.connect(warehouse) as connection:
        statuses = dict(connection.execute(
            "select airflow_run_id || ':' || node_name, status from ops.dbt_node_results "
            "where resource_type = 'source'").fetchall())
    assert statuses["fresh:users"] == "pass" and statuses["fresh:login_events"] == "pass"
    assert statuses["stale:users"] == "error" and statuses["stale:login_events"] == "pass"


def test_rerunning_an_older_date_rebuilds_it_and_leaves_later_dates_alone(built_warehouse, dbt_target):
    """Runs last in this module: it changes the warehouse."""
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    older = RUN_DATE - timedelta(days=7)
    mart = "select * from marts.fct_tenant_daily_usage where usage_date = %s order by tenant_id"
    with psycopg.connect(warehouse, autocommit=True) as connection:
        latest_before = connection.execute(mart, (RUN_DATE,)).fetchall()
        count_before = connection.execute("select count(*) from marts.fct_tenant_daily_usage").fetchone()
        logins_before = connection.execute("select sum(login_days_30d) from marts.fct_tenant_daily_usage "
                                           "where usage_date = %s", (older,)).fetchone()[0]
        # The source deleted every login of the older date: the loader flags them, staging drops them.
        connection.execute("update raw_nexpro.login_events set _deleted_at = now() "
                           "where (logged_in_at at time zone 'Asia/Tokyo')::date = %s", (older,))

    rerun = dbt(warehouse, dbt_target, "run", "--select", "+fct_tenant_daily_usage", run_date=older)

    assert rerun.returncode == 0, rerun.stdout[-3000:]
    with psycopg.connect(warehouse) as connection:
        assert connection.execute(mart, (RUN_DATE,)).fetchall() == latest_before, "later dates stay as they were"
        assert connection.execute("select count(*) from marts.fct_tenant_daily_usage").fetchone() == count_before
        older_rows = connection.execute(
            "select bool_or(had_login), sum(login_days_30d), min(computed_for_run_date) "
            "from marts.fct_tenant_daily_usage where usage_date = %s", (older,)).fetchone()
    assert older_rows[0] is False, "the older date was rebuilt without its deleted logins"
    assert older_rows[1] < logins_before
    assert older_rows[2] == older


def test_the_health_signal_and_revenue_facts_name_the_company_and_its_csm(built_warehouse):
    """BI tools list facts without a join: each carries the company's and the CSM's names, which for a company
    with an account are the Account's name and its owner's (recomputed here from the raw Salesforce copy)."""
    warehouse, completed, _results = built_warehouse
    assert completed.returncode == 0
    with psycopg.connect(warehouse) as connection:
        salesforce = {account_id: (name, owner) for account_id, name, owner in connection.execute(
            "select account.id, account.name, owner.name from raw_salesforce.account as account "
            "left join raw_salesforce.user as owner on owner.id = account.ownerid "
            "where account._deleted_at is null").fetchall()}
        for mart in ("fct_health_scores", "fct_company_signals", "fct_mrr_company_monthly"):
            rows = connection.execute(
                f"select distinct fact.company_id, fact.company_name, fact.csm_name, companies.account_id "
                f"from marts.{mart} as fact join marts.dim_companies as companies using (company_id)").fetchall()
            assert any(account_id for *_, account_id in rows), mart
            for company_id, name, csm, account_id in rows:
                if account_id:
                    assert (name, csm) == salesforce[account_id], (mart, company_id)
                else:
                    assert name and csm is None, (mart, company_id)
