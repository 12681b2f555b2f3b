"""Salesforce write-back benchmark: 10,000 companies, a first full sync, then a day where 5% of scores changed.

    make bench                       # runs this after the extract benchmarks
    .venv/bin/python bench/salesforce_writeback.py --companies 10000

It starts the Salesforce sandbox on a benchmark PostgreSQL, gives its org the companies' Accounts (once,
then reuses them), and fills a fresh warehouse's `activation` schema with synthetic rows shaped as the sync
models are (the dbt project's write-back models at 10,000 companies are benchmarked elsewhere):

  sync_account_health         one row per Account
  sync_health_score_history   one row per Account and date, the 30 dates ending on the run date
  sync_usage                  one row per Account and date, the 7 dates ending on the run date
  sync_revenue                one row per Account and month, the 12 closed months

Then `csops.activation.writeback.write_back` runs three times against the org over HTTPS:

  first sync    an empty ledger: everything is sent (Bulk API 2.0 jobs)
  next day      the run date moves on a day: each dated object gains the new date's rows, and 5% of the
                Accounts' scores changed (Collections)
  re-run        the same day again: nothing is sent, no API call

and prints per object the rows, what changed, what was sent, the API calls and the seconds, against the
goal calls <= 3 + 4 x ceil(changed rows / 10,000) per object, and none when nothing changed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg
from sandbox_helpers import fill_org, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_RUN_DATE = date(2026, 11, 20)


def fill_accounts(database_url: str, wanted: int) -> int:
    """Add Accounts to the org until it holds `wanted` live ones."""
    return fill_org(database_url, "Account", wanted, ("Name", "Type"),
                    lambda _offset, number: (f"株式会社ベンチ{number}", "Customer"),
                    lambda _offset: "2026-01-05T00:00:00+00")


# Synthetic sync rows: every value is a function of (Account, date), so a date's rows are the same on every
# day that still holds them; `changed` Accounts (every twentieth, 5%) score 0.1 lower from the second day.
SYNC_SQL = """
drop schema if exists activation cascade;
create schema activation;
create temporary table accounts as
select "Id" as account_id, row_number() over (order by "Id") as n
from bench_accounts;

create table activation.sync_account_health as
select account_id as "Id",
    cast(1 + (mod(n, 200)) / 100.0 - case when %(second_day)s and mod(n, 20) = 0 then 0.1 else 0 end as numeric(4, 2))
        as "Health_Score__c",
    case when mod(n, 200) >= 150 then 'Green' when mod(n, 200) >= 80 then 'Yellow' else 'Red' end as "Health_Status__c",
    'Flat' as "Health_Trend__c",
    case when mod(n, 200) < 150 then 'login_days is 1; touchpoints is 2' end as "Health_Reasons__c",
    cast(case when %(second_day)s and mod(n, 20) = 0 then %(run_date)s else date '2026-10-01' end as date)
        as "Health_Score_Date__c"
from accounts;

create table activation.sync_health_score_history as
select account_id || ':' || to_char(day, 'YYYY-MM-DD') as "Health_Score_Key__c", account_id as "Account__c",
    to_char(day, 'YYYY-MM-DD') as "Name", cast(day as date) as "Score_Date__c",
    cast(1 + (mod(n + extract(doy from day)::int, 200)) / 100.0 as numeric(4, 2)) as "Total_Score__c",
    cast(1 + (mod(n, 200)) / 100.0 as numeric(4, 2)) as "Usage_Score__c",
    cast(2.00 as numeric(4, 2)) as "Outcome_Score__c", cast(2.50 as numeric(4, 2)) as "Relationship_Score__c",
    cast(3.00 as numeric(4, 2)) as "Contract_Score__c", 'Yellow' as "Status__c"
from accounts
cross join generate_series(%(run_date)s::date - (%(history_days)s - 1), %(run_date)s::date, interval '1 day') as day;

create table activation.sync_usage as
select account_id || ':' || to_char(day, 'YYYY-MM-DD') as "Usage_Key__c", account_id as "Account__c",
    to_char(day, 'YYYY-MM-DD') as "Name", cast(day as date) as "Usage_Date__c",
    cast(mod(n + extract(doy from day)::int, 31) as numeric(18, 2)) as "Login_Days_30d__c",
    cast(mod(n, 12) as numeric(18, 2)) as "Webinars_Held_30d__c",
    cast(mod(n * 7 + extract(doy from day)::int, 900) as numeric(18, 2)) as "Attendees_30d__c",
    cast((mod(n * 13, 5000)) / 10.0 as numeric(18, 3)) as "Data_Transfer_GB__c"
from accounts
cross join generate_series(%(run_date)s::date - (%(usage_days)s - 1), %(run_date)s::date, interval '1 day') as day;

create table activation.sync_revenue as
select account_id || ':' || to_char(month, 'YYYY-MM') as "Revenue_Key__c", account_id as "Account__c",
    to_char(month, 'YYYY-MM') as "Name", cast(month as date) as "Month__c",
    cast(30000 + (mod(n, 10)) * 15000 as numeric(18, 2)) as "MRR__c",
    cast(30000 + (mod(n, 10)) * 15000 as numeric(18, 2)) as "Invoiced_Amount__c",
    (array['Starter', 'Standard', 'Premium'])[1 + mod(n, 3)] as "Plan__c"
from accounts
cross join generate_series(date_trunc('month', %(run_date)s::date) - interval '12 months',
                           date_trunc('month', %(run_date)s::date) - interval '1 month', interval '1 month') as month;
"""


def build_sync_tables(warehouse_url: str, org_url: str, run_date: date, *, second_day: bool,
                      history_days: int, usage_days: int) -> None:
    # Client-side binding: the statements run as one script.
    with (psycopg.connect(warehouse_url, cursor_factory=psycopg.ClientCursor) as warehouse,
          psycopg.connect(org_url) as org):
        ids = [row[0] for row in org.execute('select "Id" from sf."Account" where not "IsDeleted" order by "Id"')]
        warehouse.execute("create table if not exists bench_accounts (\"Id\" text primary key)")
        if warehouse.execute("select count(*) from bench_accounts").fetchone()[0] != len(ids):
            warehouse.execute("truncate bench_accounts")
            with warehouse.cursor().copy('copy bench_accounts ("Id") from stdin') as copy:
                for account_id in ids:
                    copy.write_row((account_id,))
        warehouse.execute(SYNC_SQL, {"run_date": run_date, "second_day": second_day,
                                     "history_days": history_days, "usage_days": usage_days})


def run(label: str, warehouse_url: str, sf, run_date: date, figures: dict) -> None:
    from csops.activation.writeback import write_back

    started = time.monotonic()
    report = write_back(warehouse_url, sf, run_date, run_id=f"bench-{label}-{time.time()}")
    if not report.ok:
        raise SystemExit("\n".join(report.lines()))
    figures[label] = (report, time.monotonic() - started)
    print(f"  {label}: {report.api_calls} API call(s) in {figures[label][1]:.1f}s", flush=True)


def goal(changed: int) -> int:
    return 3 + 4 * math.ceil(changed / 10_000) if changed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=30, help="Health_Score__c dates a first sync sends")
    parser.add_argument("--usage-days", type=int, default=7, help="Usage__c dates each sync holds")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from simple_salesforce import Salesforce

    from csops.local_postgres import LocalPostgres, ensure_database
    from csops.sandbox.salesforce.objects import API_VERSION
    from csops.sandbox.salesforce.server import SalesforceSandbox

    home = Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local"))
    server = LocalPostgres(home / "bench-postgres", int(os.environ.get("CS_BENCH_PG_PORT", "54339")))
    started_server = server.start()
    sandbox = SalesforceSandbox(home / "bench-salesforce-writeback", server.url("salesforce_writeback"), free_port(),
                                free_port())
    try:
        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            # A fresh org each time: the first sync must create every record.
            connection.execute("drop database if exists salesforce_writeback with (force)")
            connection.execute("drop database if exists bench_writeback with (force)")
            connection.execute("create database bench_writeback")
        ensure_database(server.url("postgres"), "salesforce_writeback")
        sandbox.start()
        sandbox.admin.set_daily_limit(1_000_000)
        accounts = fill_accounts(sandbox.database_url, arguments.companies)
        print(f"Salesforce sandbox org with {accounts:,} Accounts", flush=True)
        os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_bundle())
        login = sandbox.credentials()
        sf = Salesforce(username=login.username, password=login.password, security_token=login.security_token,
                        proxies=sandbox.proxies(), version=API_VERSION)
        warehouse = server.url("bench_writeback")
        figures: dict = {}
        days = (("first sync", FIRST_RUN_DATE, False), ("next day", FIRST_RUN_DATE + timedelta(days=1), True),
                ("re-run", FIRST_RUN_DATE + timedelta(days=1), True))
        for label, run_date, second_day in days:
            if label != "re-run":
                build_sync_tables(warehouse, sandbox.database_url, run_date, second_day=second_day,
                                  history_days=arguments.history_days, usage_days=arguments.usage_days)
            run(label, warehouse, sf, run_date, figures)
        print(f"\n{accounts:,} companies        object            rows   changed      sent  API calls  goal   seconds")
        for label, (report, _seconds) in figures.items():
            for r in report.objects:
                print(f"  {label:<12} {r.object_name:<16} {r.considered:>9,} {r.changed:>9,} {r.sent:>9,} "
                      f"{r.api_calls:>10} {goal(r.changed):>5} {r.seconds:>9.1f}  {r.method}")
            print(f"  {label:<12} {'(budget read)':<16} {'':>9} {'':>9} {'':>9} {report.budget_calls:>10}")
        misses = [(label, r.object_name) for label, (report, _s) in figures.items() for r in report.objects
                  if r.api_calls > goal(r.changed)]
        print("\nEvery object within its call goal." if not misses else f"\nOver the call goal: {misses}")
    finally:
        sandbox.stop()
        if started_server:
            server.stop()


if __name__ == "__main__":
    main()
