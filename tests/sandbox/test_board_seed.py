"""Seeding the board sandbox from the world: deterministic, extendable, and billing each persona right."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from csops.sandbox.board.schema import INVOICE_PAID, INVOICE_SENT, TIMING_ONE_OFF
from csops.sandbox.board.seed import month_start, plan_code_in, seed_board
from csops.sandbox.world import PLANS_BY_CODE, plan_companies
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


def test_upgrades_change_the_plan_line_from_the_upgrade_month(seeded):
    expanding = [c for c in plan_companies(TEST_WORLD) if c.persona == "expanding" and c.upgraded_on
                 and c.upgraded_on < TEST_WORLD.end_date - timedelta(days=25)]
    assert expanding, "the test world should hold an expanding company upgraded a month before its end"
    for company in expanding:
        recurring = [i for i in invoices_of(seeded, company.board_client_id) if i["timing"] != TIMING_ONE_OFF
                     and i["subtotal"] > 0]
        for invoice in recurring:
            plan = PLANS_BY_CODE[plan_code_in(company, invoice["start"])]
            assert invoice["amounts"][0] == plan.monthly_price_jpy, invoice
        upgraded = [i for i in recurring if i["end"] >= company.upgraded_on]
        earlier = [i for i in recurring if i["end"] < company.upgraded_on]
        assert upgraded and earlier
        assert upgraded[0]["amounts"][0] == PLANS_BY_CODE[company.upgraded_plan_code].monthly_price_jpy
        assert earlier[-1]["amounts"][0] == PLANS_BY_CODE[company.plan_code].monthly_price_jpy


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
