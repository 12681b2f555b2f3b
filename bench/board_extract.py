"""board extract benchmark: a full read of the board sandbox's invoices against the 3 requests/second limit.

    make bench                                       # runs this at the full size (10,000 companies, ~16 min)
    .venv/bin/python bench/board_extract.py --accounts 1000   # a smaller world (~1.5 min)

It seeds the board sandbox (once, then reuses it) with a world of `--accounts` companies over 730 days
(24 months; board bills each company from its contract start, so the invoice count is what the world
holds, printed), starts the sandbox with the per-second limit on and the daily budget raised out of the
way through its admin API, then runs the real `csops.extract.board.load_resource` for `invoices` (full
read, `response_group=invoice`, pages of 100, line items included) into a fresh warehouse database, and
prints: pages, requests (a 429 retry is a request too), elapsed time, the achieved requests/second
against the 3.0 limit, and where the time went: waiting in the client's limiter, in HTTP (the sandbox
answering), and the rest (staging and merging into the warehouse).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from datetime import date
from pathlib import Path

import psycopg
import requests
from sandbox_helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
END_DATE = date(2026, 11, 20)


class TimedSession(requests.Session):
    """A requests session that adds up the time its requests take."""

    seconds = 0.0

    def request(self, *args, **kwargs):
        started = time.monotonic()
        try:
            return super().request(*args, **kwargs)
        finally:
            self.seconds += time.monotonic() - started


def timed_client(base_url: str, api_key: str, token: str):
    """A BoardClient whose limiter waits are added up (`waited`)."""
    from csops.extract.board import BoardClient

    class TimedClient(BoardClient):
        waited = 0.0

        def _pace(self) -> None:
            started = time.monotonic()
            super()._pace()
            self.waited += time.monotonic() - started

    return TimedClient(base_url, api_key, token, session=TimedSession())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=730)
    arguments = parser.parse_args()

    from csops.extract.board import PER_PAGE, REQUESTS_PER_SECOND, load_resource
    from csops.local_postgres import LocalPostgres, ensure_database
    from csops.sandbox.board.seed import seed_board
    from csops.sandbox.board.server import BoardSandbox
    from csops.sandbox.world import WorldParams

    home = Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local"))
    server = LocalPostgres(home / "bench-postgres", int(os.environ.get("CS_BENCH_PG_PORT", "54339")))
    started_server = server.start()
    database = f"board_{arguments.accounts}"
    sandbox = BoardSandbox(home / "bench-board", server.url(database), free_port())
    try:
        ensure_database(server.url("postgres"), database)
        clock = time.monotonic()
        seeded = seed_board(sandbox.database_url, WorldParams(arguments.accounts, arguments.days, 7, END_DATE),
                            progress=lambda message: print(f"  {message}", flush=True))
        print(f"board sandbox: {seeded['action']} in {time.monotonic() - clock:.0f}s", flush=True)
        with psycopg.connect(sandbox.database_url) as connection:
            invoices, lines, clients = connection.execute(
                "select (select count(*) from board.invoices), (select count(*) from board.invoice_details), "
                "(select count(distinct client_id) from board.invoices)").fetchone()
        print(f"{arguments.accounts:,} companies x {arguments.days} days: {invoices:,} invoices "
              f"({lines:,} lines) for {clients:,} billed clients", flush=True)

        sandbox.start()
        sandbox.admin.set_daily_limit(10_000_000)
        sandbox.admin.set_per_second_limit(True)
        sandbox.admin.reset_usage()
        warehouse = "bench_board_warehouse"
        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            connection.execute(f"drop database if exists {warehouse} with (force)")
            connection.execute(f"create database {warehouse}")
        values = sandbox.credentials()
        client = timed_client(sandbox.base_url, values["api_key"], values["token"])
        started = time.monotonic()
        result = load_resource(client, server.url(warehouse), "invoices", run_id=f"bench-{time.time():.0f}",
                               full_refresh=True)
        elapsed = time.monotonic() - started
        pages = math.ceil(result.rows_read / PER_PAGE)
        rate = result.api_calls / elapsed
        waited, in_http = client.waited, client.session.seconds
        print(f"\ninvoices, full read: {result.status}, {result.rows_read:,} rows in {pages:,} pages, "
              f"{result.api_calls:,} requests ({result.api_calls - pages} answered 429 and retried)")
        print(f"  elapsed            {elapsed:10.1f} s")
        print(f"  requests/s         {rate:10.3f}   ({rate / REQUESTS_PER_SECOND:.1%} of the {REQUESTS_PER_SECOND}.0 "
              f"limit; the floor at 3.0/s is {result.api_calls / REQUESTS_PER_SECOND:.0f} s)")
        print(f"  limiter wait       {waited:10.1f} s   ({waited / elapsed:.0%})")
        print(f"  HTTP               {in_http:10.1f} s   ({in_http / elapsed:.0%}; "
              f"{in_http / result.api_calls * 1000:.0f} ms a request)")
        print(f"  warehouse + rest   {elapsed - waited - in_http:10.1f} s   "
              f"({(elapsed - waited - in_http) / elapsed:.0%})")
        print(f"  rows/s             {result.rows_read / elapsed:10.0f}")
    finally:
        sandbox.stop()
        if started_server:
            server.stop()


if __name__ == "__main__":
    main()
