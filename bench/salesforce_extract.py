"""Salesforce extract benchmark: 200,000 Tasks through the REST API and through a Bulk API 2.0 query job.

    make bench                       # runs this after the extract-load benchmark
    .venv/bin/python bench/salesforce_extract.py --tasks 200000

It starts the Salesforce sandbox on a benchmark PostgreSQL, fills it (once, then reuses it) with the
given number of Tasks, then loads `Task` into a fresh warehouse twice, each in a process of its own so
its peak memory is its own:

  rest   csops.extract.salesforce.load_object with the Bulk threshold above the row count: REST `queryAll`
         pages of 2,000 (what an increment below the threshold does)
  bulk   the same with a threshold of 0: one Bulk API 2.0 `queryAll` job, results paged by locator

and prints, for each, the API calls it made, the time and the loader process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from sandbox_helpers import fill_org, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(mode: str) -> dict:
    """Run in a child process: one full load of Task, REST or Bulk, with its own figures."""
    from simple_salesforce import Salesforce

    from csops.extract.salesforce import CountingSession, SalesforceApi, load_object

    login = json.loads(os.environ["BENCH_SALESFORCE_LOGIN"])

    def connect(session):
        session.proxies.update(login["proxies"])
        return Salesforce(username=login["username"], password=login["password"],
                          security_token=login["security_token"], session=session)

    api = SalesforceApi(connect, CountingSession(reserve_share=0.0))
    started = time.monotonic()
    result = load_object(api, os.environ["BENCH_WAREHOUSE_URL"], "Task", run_id=f"bench-{mode}-{time.time()}",
                         full_refresh=True, bulk_threshold=10**12 if mode == "rest" else 0, bulk_poll_seconds=0.2)
    return {"rows": result.rows_read, "seconds": time.monotonic() - started, "api_calls": result.api_calls,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def fill_tasks(database_url: str, wanted: int) -> int:
    """Add Tasks to the org until it holds `wanted` live ones."""
    def stamp(offset: int) -> str:
        return f"2026-0{1 + offset % 9}-{1 + offset % 28:02d}T0{offset % 10}:00:00+00"

    return fill_org(database_url, "Task", wanted,
                    ("Subject", "ActivityDate", "Status", "Priority", "Type", "IsClosed", "Description"),
                    lambda offset, number: (f"フォローアップ {number}", stamp(offset)[:10], "Completed", "Normal",
                                            ("Call", "Email", "Meeting")[offset % 3], True,
                                            "定例の状況確認。利用状況と次回のアクションを共有した。"),
                    stamp)


def in_child(mode: str, environment: dict[str, str]) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                               env={**os.environ, **environment})
    if completed.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"  {mode}: {figures['rows']:,} rows, {figures['api_calls']} API calls, {figures['seconds']:.1f}s, "
          f"peak RSS {figures['peak_rss_mb']:.0f} MB", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(measure(arguments.child)))
        return

    from csops.local_postgres import LocalPostgres, ensure_database
    from csops.sandbox.salesforce.server import SalesforceSandbox
    home = Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local"))
    server = LocalPostgres(home / "bench-postgres", int(os.environ.get("CS_BENCH_PG_PORT", "54339")))
    started_server = server.start()
    sandbox = SalesforceSandbox(home / "bench-salesforce", server.url("salesforce"), free_port(), free_port())
    try:
        ensure_database(server.url("postgres"), "salesforce")
        sandbox.start()
        sandbox.admin.set_daily_limit(1_000_000)
        tasks = fill_tasks(sandbox.database_url, arguments.tasks)
        print(f"Salesforce sandbox org with {tasks:,} Tasks", flush=True)
        login = sandbox.credentials()
        environment = {
            "REQUESTS_CA_BUNDLE": str(sandbox.ca_bundle()),
            "BENCH_SALESFORCE_LOGIN": json.dumps({"username": login.username, "password": login.password,
                                                  "security_token": login.security_token,
                                                  "proxies": sandbox.proxies()}),
        }
        figures = {}
        for mode in ("rest", "bulk"):
            name = f"bench_sf_{mode}"
            with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
                connection.execute(f"drop database if exists {name} with (force)")
                connection.execute(f"create database {name}")
            figures[mode] = in_child(mode, {**environment, "BENCH_WAREHOUSE_URL": server.url(name)})
        print("\nTask, full load        rows   API calls    seconds   rows/s   peak RSS MB")
        for mode, measured in figures.items():
            print(f"  {mode:<16} {measured['rows']:>10,} {measured['api_calls']:>10} {measured['seconds']:>10.1f} "
                  f"{measured['rows'] / measured['seconds']:>8,.0f} {measured['peak_rss_mb']:>12.0f}")
    finally:
        sandbox.stop()
        if started_server:
            server.stop()


if __name__ == "__main__":
    main()
