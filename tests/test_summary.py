"""The run summary's revenue line: the latest closed month of marts.fct_revenue_monthly."""

from __future__ import annotations

import psycopg

from csops.summary import format_summary, run_summary


def test_revenue_line_shows_the_latest_month(warehouse_url):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute("""
            create schema marts;
            create table marts.fct_revenue_monthly (
                month_start date, closing_mrr numeric, customers_at_end integer,
                nrr numeric, grr numeric, nrr_t12m numeric, grr_t12m numeric);
            insert into marts.fct_revenue_monthly values
                ('2026-09-01', 9000000, 170, 0.99, 0.97, null, null),
                ('2026-10-01', 12345678.4, 181, 1.0312, 0.9875, 1.1, null);
        """)
    text = format_summary(run_summary(warehouse_url, "no-such-run"))
    assert ("Revenue, 2026-10 (marts.fct_revenue_monthly): MRR ¥12,345,678 from 181 customers; "
            "NRR 103.1%, GRR 98.8% in the month; trailing 12 months NRR 110.0%, GRR n/a") in text


def test_no_revenue_line_before_the_mart_exists(warehouse_url):
    assert "Revenue" not in format_summary(run_summary(warehouse_url, "no-such-run"))
