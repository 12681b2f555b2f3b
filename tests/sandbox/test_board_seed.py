"""Seeding the board sandbox from the world: deterministic, extendable, and billing each persona right."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from csops.sandbox.board.schema import INVOICE_PAID, INVOICE_SENT, ORDER_CONFIRMED, ORDER_FINISHED, TIMING_ONE_OFF
from csops.sandbox.board.seed import OPTIONS, add_months, month_end, month_start, seed_board
from csops.sandbox.world import PLANS_BY_CODE, plan_companies, plan_on
from tests.conftest import TEST_WORLD, create_database

TABLES = ("clients", "projects", "invoices", "invoice_details")


def dump(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as connection:
        return {table: connection.execute(f"select * from board.{table} order by id").fetchall() for table in TABLES}


@pytest.fixture(scope="module")
def seeded(postgres) -> str:
    url = create_database(postgres, "board_seed")
    seed_board(url, TEST_WORLD, progress=lambda _message: None)
    return url


def test_seeding_twice_gives_the_same_rows_and_reuses_the_world(postgres, seeded):
    again = create_database(postgres, "board_seed")
    seed_board(again, TEST_WORLD, progress=lambda _message: None)
    assert dump(again) == dump(seeded)
    assert seed_board(again, TEST_WORLD, progress=lambda _message: None)["action"] == "reused"


def test_extension_equals_a_direct_build(postgres, seeded):
    extended = create_database(postgres, "board_seed")
    early = TEST_WORLD.end_date - timedelta(days=40)
    first = seed_board(extended, TEST_WORLD, progress=lambda _message: None, through=early)
    assert first["action"] == "generated"
    before = dump(extended)
    result = seed_board(extended, TEST_WORLD, progress=lambda _message: None)
    assert result["action"] == "extended"
    after = dump(extended)
    assert after == dump(seeded)
    # The days between added invoices and moved existing ones along (sent → paid).
    assert len(after["invoices"]) > len(before["invoices"])
    changed = {row[0] for row in before["invoices"]} & {row[0] for row in after["invoices"] if row[7] == INVOICE_PAID}
    assert changed - {row[0] for row in before["invoices"] if row[7] == INVOICE_PAID}


def test_extension_past_the_end_equals_a_direct_build(postgres, seeded):
    """Past the end the world keeps running: a scheduled cancellation finishes its project."""
    later = TEST_WORLD.end_date + timedelta(days=45)
    assert any(c.cancelled_on and TEST_WORLD.end_date < c.cancelled_on <= later for c in plan_companies(TEST_WORLD))
    extended, direct = create_database(postgres, "board_seed"), create_database(postgres, "board_seed")
    seed_board(extended, TEST_WORLD, progress=lambda _message: None)
    assert seed_board(extended, TEST_WORLD, progress=lambda _message: None, through=later)["action"] == "extended"
    seed_board(direct, TEST_WORLD, progress=lambda _message: None, through=later)
    assert dump(extended) == dump(direct) != dump(seeded)


def test_clients_are_the_world_companies_plus_two_without_an_account(seeded):
    companies = plan_companies(TEST_WORLD)
    clients = {row[0]: row[1] for row in dump(seeded)["clients"]}
    assert {c.board_client_id: c.company_name for c in companies}.items() <= clients.items()
    extra = set(clients) - {c.board_client_id for c in companies}
    assert len(extra) == 2 and min(extra) > max(c.board_client_id for c in companies)


def invoices_of(url: str, client_id: int) -> list[dict]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "select i.id, i.invoice_date, i.service_period_start, i.service_period_end, i.subtotal, i.tax, i.total, "
            "i.invoice_status, p.invoice_timing, array_agg(d.description order by d.sort_no), "
            "array_agg(d.amount order by d.sort_no), array_agg(d.quantity order by d.sort_no) "
            "from board.invoices i join board.projects p on p.id = i.project_id "
            "join board.invoice_details d on d.invoice_id = i.id where i.client_id = %s group by i.id, p.id "
            "order by i.invoice_date", (client_id,)).fetchall()
    names = ("id", "invoice_date", "start", "end", "subtotal", "tax", "total", "status", "timing", "descriptions",
             "amounts", "quantities")
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_billing_reaches_back_to_the_contract_start_and_taxes_ten_percent(seeded):
    company = min(plan_companies(TEST_WORLD), key=lambda c: c.contract_started_on)
    assert company.contract_started_on < TEST_WORLD.start_date - timedelta(days=300)
    invoices = invoices_of(seeded, company.board_client_id)
    assert month_start(invoices[0]["start"]) == month_start(company.contract_started_on)
    for invoice in invoices:
        assert invoice["subtotal"] == sum(invoice["amounts"])
        assert invoice["tax"] == int(invoice["subtotal"] / 10)
        assert invoice["total"] == invoice["subtotal"] + invoice["tax"]


def test_plan_changes_change_the_plan_line_from_the_month_of_the_change(seeded):
    end = TEST_WORLD.end_date
    changing = [c for c in plan_companies(TEST_WORLD)
                if c.plan_changed_on and c.plan_changed_on < end - timedelta(days=25)]
    assert {c.plan_change for c in changing} == {"upgrade", "downgrade"}, "the test world upgrades and downgrades"
    for company in changing:
        recurring = [i for i in invoices_of(seeded, company.board_client_id) if i["timing"] != TIMING_ONE_OFF
                     and i["subtotal"] > 0]
        for invoice in recurring:
            plan = PLANS_BY_CODE[plan_on(company, month_end(invoice["start"]))]
            assert invoice["amounts"][0] == plan.monthly_price_jpy, invoice
        changed = [i for i in recurring if i["end"] >= company.plan_changed_on]
        earlier = [i for i in recurring if i["end"] < company.plan_changed_on]
        assert changed and earlier
        assert changed[0]["amounts"][0] == PLANS_BY_CODE[company.new_plan_code].monthly_price_jpy
        assert earlier[-1]["amounts"][0] == PLANS_BY_CODE[company.plan_code].monthly_price_jpy
    signed = [c for c in plan_companies(TEST_WORLD) if c.plan_change == "upgrade" and c.plan_changed_on > end]
    assert signed, "an upgrade starting after the end"
    for company in signed:
        invoices = invoices_of(seeded, company.board_client_id)
        billed = [i["amounts"][0] for i in invoices if i["timing"] != TIMING_ONE_OFF]
        assert PLANS_BY_CODE[company.new_plan_code].monthly_price_jpy not in billed, "billed only from its start"


def projects_of(url: str, client_id: int) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "select id, order_status, billing_start_date, billing_end_date from board.projects "
            "where client_id = %s and invoice_timing <> %s order by id", (client_id, TIMING_ONE_OFF)).fetchall()


def test_billing_stops_after_the_cancellation_month_and_restarts_on_reactivation(seeded):
    end = TEST_WORLD.end_date
    seen = set()
    for company in plan_companies(TEST_WORLD):
        if company.cancelled_on is None:
            continue
        invoices = [i for i in invoices_of(seeded, company.board_client_id) if i["timing"] != TIMING_ONE_OFF]
        projects = projects_of(seeded, company.board_client_id)
        first = [i for i in invoices if i["start"] <= company.cancelled_on]
        if company.cancelled_on > end:  # notice given, still billed and running at the end
            seen.add("cancelling")
            assert [p[1] for p in projects] == [ORDER_CONFIRMED]
            assert month_start(invoices[-1]["start"]) >= add_months(month_start(end), -1), "billed up to the end"
            continue
        seen.add("cancelled")
        assert projects[0][1:] == (ORDER_FINISHED, company.contract_started_on, company.cancelled_on)
        assert month_start(first[-1]["start"]) == month_start(company.cancelled_on), "the last month is billed"
        assert first[-1]["end"] == company.cancelled_on
        later = invoices[len(first):]
        if company.reactivated_on is None:
            assert later == [] and len(projects) == 1
            continue
        seen.add("reactivated")
        assert [p[1:] for p in projects[1:]] == [(ORDER_CONFIRMED, company.reactivated_on, None)], "a new contract"
        assert later[0]["start"] == company.reactivated_on
        assert month_start(later[0]["start"]) > add_months(month_start(company.cancelled_on), 1), "nothing in the gap"
    assert seen == {"cancelling", "cancelled", "reactivated"}


def test_an_option_is_removed_in_the_last_twelve_months(seeded):
    end = TEST_WORLD.end_date
    removals = []
    for company in plan_companies(TEST_WORLD):
        monthly = [i for i in invoices_of(seeded, company.board_client_id)
                   if i["timing"] != TIMING_ONE_OFF and i["subtotal"] > 0 and i["quantities"][0] == 1]
        for description, _price in OPTIONS:
            billed = [any(d.startswith(description) for d in i["descriptions"]) for i in monthly]
            removals += [monthly[n]["start"] for n in range(1, len(billed)) if billed[n - 1] and not billed[n]]
    assert any(end - timedelta(days=365) < month <= end for month in removals), removals


def test_annual_prepaid_only_for_thriving_and_steady_and_covers_twelve_months(seeded):
    annual = []
    for company in plan_companies(TEST_WORLD):
        for invoice in invoices_of(seeded, company.board_client_id):
            if invoice["quantities"][0] == 12:
                annual.append((company, invoice))
    assert annual, "the test world should hold an annual prepaid contract"
    for company, invoice in annual:
        assert company.persona in ("thriving", "steady")
        assert invoice["end"] == invoice["start"].replace(year=invoice["start"].year + 1) - timedelta(days=1)
        assert invoice["invoice_date"] == invoice["start"]  # billed in advance


def test_one_credit_note_and_statuses_progress(seeded):
    invoices = dump(seeded)["invoices"]
    assert len([row for row in invoices if row[12] < 0]) == 1
    statuses = {row[7] for row in invoices}
    assert {INVOICE_SENT, INVOICE_PAID} <= statuses
    for row in invoices:
        assert (row[6] is not None) == (row[7] == INVOICE_PAID)  # paid_date exactly on paid invoices
        assert row[14] >= row[13]  # updated_at never before created_at
