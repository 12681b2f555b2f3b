"""The run summary's business lines: the latest closed month of marts.fct_revenue_monthly, and the run date's
status mix and status changes from marts.fct_health_scores."""

from __future__ import annotations

from datetime import date

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


HEALTH_ROWS = """
    create schema if not exists marts;
    create table marts.fct_health_scores (
        company_id text, score_date date, health_status text, status_transition text,
        is_low_coverage boolean, override_status text);
    insert into marts.fct_health_scores values
        ('a', '2026-11-19', 'Green', null, false, null),
        ('b', '2026-11-19', 'Green', null, false, null),
        ('c', '2026-11-19', 'Yellow', null, false, null),
        ('a', '2026-11-20', 'Green', null, false, null),
        ('b', '2026-11-20', 'Yellow', 'Green→Yellow', false, null),
        ('c', '2026-11-20', 'Red', 'Yellow→Red', true, 'Red'),
        ('d', '2026-11-20', 'Red', null, false, null);
"""


def test_health_lines_show_the_run_dates_mix_and_changes(warehouse_url):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute(HEALTH_ROWS)
    latest = format_summary(run_summary(warehouse_url, "no-such-run"))
    assert ("Health, 2026-11-20 (marts.fct_health_scores): 4 companies: Green 1 (25.0%), Yellow 1 (25.0%), "
            "Red 2 (50.0%); 1 with low coverage, 1 overridden by a CSM") in latest
    assert "  status changes that day: Green→Yellow 1, Yellow→Red 1" in latest

    rerun = format_summary(run_summary(warehouse_url, "no-such-run", run_date=date(2026, 11, 19)))
    assert ("Health, 2026-11-19 (marts.fct_health_scores): 3 companies: Green 2 (66.7%), Yellow 1 (33.3%), "
            "Red 0 (0.0%)\n  status changes that day: none") in rerun


def test_no_health_line_before_the_mart_exists_or_for_a_day_without_scores(warehouse_url):
    assert "Health" not in format_summary(run_summary(warehouse_url, "no-such-run"))
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute(HEALTH_ROWS)
    assert "Health" not in format_summary(run_summary(warehouse_url, "no-such-run", run_date=date(2026, 11, 21)))


def test_a_rubric_change_is_named_with_what_it_moved(warehouse_url):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute("""
            create schema if not exists marts;
            create table marts.fct_health_scores (
                company_id text, score_date date, health_status text, status_transition text,
                is_low_coverage boolean, override_status text, rubric_version text, rubric_hash text,
                previous_rubric_version text, previous_rubric_hash text, total_score numeric,
                total_score_previous_rubric numeric, health_status_previous_rubric text);
            insert into marts.fct_health_scores values
                ('a', '2026-11-19', 'Red', null, false, null, 'v3', 'h3', null, null, 1.70, null, null),
                ('a', '2026-11-20', 'Yellow', 'Red→Yellow', false, null, 'v4', 'h4', 'v3', 'h3', 1.85, 1.70, 'Red'),
                ('b', '2026-11-20', 'Yellow', 'Red→Yellow', false, null, 'v4', 'h4', 'v3', 'h3', 1.80, 1.75, 'Red'),
                ('c', '2026-11-20', 'Green', 'Yellow→Green', false, null, 'v4', 'h4', 'v3', 'h3', 2.55, 2.45, 'Yellow'),
                ('d', '2026-11-20', 'Green', null, false, null, 'v4', 'h4', 'v3', 'h3', 2.90, 2.80, 'Green'),
                ('e', '2026-11-20', 'Red', null, false, null, 'v4', 'h4', 'v3', 'h3', 1.20, 1.20, 'Red');
        """)
    text = format_summary(run_summary(warehouse_url, "no-such-run"))
    assert ("  rubric v3 → v4: 4 scores changed, 3 statuses: Red→Yellow 2, Yellow→Green 1 (the rubric changed, "
            "not the customers: its status changes fire no playbook)") in text
    assert "rubric" not in format_summary(run_summary(warehouse_url, "no-such-run", run_date=date(2026, 11, 19)))
