"""dbt build benchmark: the first, full `dbt build` over a year of history vs the next day's incremental build.

    make bench-dbt                    # or: nice -n 10 .venv/bin/python bench/dbt_build.py
    make bench-dbt ARGS="--accounts 300"   # a small world, for a quick look

The world: `--accounts` companies (10,000) over `--days` days (365) ending on `--end-date` (D, a Sunday, so
D + 1 is a weekday's worth of activity), every company and day present, with the attendees of each
webinar thinned by `--attendee-scale` (0.1; the world parameter `attendee_scale`) so that the
registrations and viewing_sessions tables, which dominate the product database, fit a session on a
2-core machine. The three sources are the real sandboxes: the Nexpro product database, the Salesforce
org (seeded by its seed.py, read over its REST/Bulk API) and board (seeded by its seed.py, read over its
HTTP API with the per-second limit switched off through the sandbox's admin API).

State lives in `.local/bench-postgres/` (the benchmark server, port CS_BENCH_PG_PORT) and is reused:

  bdbt_<accounts>x<days>_nexpro / _salesforce / _board   the sources, generated once (~27 GB in all at
                                                         10,000 x 365 with the warehouse)
  bdbt_<accounts>x<days>_warehouse                       the warehouse, extracted in full once

Each run rolls the state forward one day. With D the sources' last day (the world's end date on the first
run), a run:
  1. extracts the sources in full into the warehouse, unless the last run left it holding D;
  2. times `dbt build --full-refresh` for run_date D with every history var at `--history-days` (365):
     health_history_days, usage_history_days and signal_history_days, so the health score history, the
     usage mart and the signal history all cover the whole year, and with no earlier test passes recorded,
     so every data test reads every row (what a first run over this world does);
  3. adds day D + 1 to the three sources (untimed: that is the product, the org and billing working) and
     extracts it incrementally into the warehouse (timed, printed beside);
  4. times `dbt build` for run_date D + 1 with the same vars (the daily run);
  5. prints, per model, seconds and rows written (dbt's run_results.json: adapter_response.rows_affected)
     for both builds, the top models by time, and the ratio of the daily build to the full one.

`--daily-only` skips step 2 and compares with the last full build's figures
(`.local/bench-dbt/full/bench-figures.json`); `--rebuild` drops the benchmark's databases first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg
from sandbox_helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.20  # the daily build costs at most this share of the full build
TOP_MODELS = 15


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        return connection.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is not None


def recreate(admin_url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name} with (force)")
        suffix = f" template {template} strategy file_copy" if template else ""
        connection.execute(f"create database {name}{suffix}")


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name} with (force)")


def sources_through(urls: dict[str, str]) -> dict[str, date | None]:
    """The last day each source holds, from the sandboxes' own world records (None: not built yet)."""
    from csops.sandbox.board import seed as board_seed
    from csops.sandbox.nexpro import generator
    from csops.sandbox.salesforce import seed as salesforce_seed

    readers = {"nexpro": generator.current_world, "salesforce": salesforce_seed.current_world,
               "board": board_seed.current_world}
    through = {}
    for source, current_world in readers.items():
        with psycopg.connect(urls[source]) as connection:
            try:
                held = current_world(connection)
            except psycopg.errors.UndefinedTable:
                held = None
        through[source] = held[1] if held else None
    return through


def loaded_through(warehouse_url: str | None) -> date | None:
    """The last day of the sources the warehouse's raw schemas hold, as this benchmark recorded it."""
    if warehouse_url is None:
        return None
    with psycopg.connect(warehouse_url) as connection:
        if connection.execute("select to_regclass('bench.loaded')").fetchone()[0] is None:
            return None
        row = connection.execute("select through from bench.loaded").fetchone()
    return row[0] if row else None


def record_loaded_through(warehouse_url: str, through: date) -> None:
    with psycopg.connect(warehouse_url) as connection:
        connection.execute("create schema if not exists bench; create table if not exists bench.loaded (through date)")
        connection.execute("delete from bench.loaded")
        connection.execute("insert into bench.loaded values (%s)", (through,))


class Sources:
    """The three source sandboxes of the benchmark world, and the real loaders that extract them."""

    def __init__(self, server, prefix: str, home: Path) -> None:
        from csops.sandbox.board.server import BoardSandbox
        from csops.sandbox.salesforce.server import SalesforceSandbox

        self.urls = {source: server.url(f"{prefix}_{source}") for source in ("nexpro", "salesforce", "board")}
        self.salesforce = SalesforceSandbox(home / "bench-dbt-salesforce", self.urls["salesforce"], free_port(),
                                            free_port())
        self.board = BoardSandbox(home / "bench-dbt-board", self.urls["board"], free_port())

    def build(self, world, through: date) -> dict[str, float]:
        """Make the sources hold `world` through `through` (generated, extended or reused); seconds per source."""
        from csops.sandbox.board.seed import seed_board
        from csops.sandbox.nexpro.generator import build_world
        from csops.sandbox.salesforce.seed import seed_org

        seconds = {}
        for source, make in (("nexpro", lambda: build_world(self.urls["nexpro"], world, say, through=through)),
                             ("salesforce", lambda: seed_org(self.urls["salesforce"], world, say, through=through)),
                             ("board", lambda: seed_board(self.urls["board"], world, say, through=through))):
            started = time.monotonic()
            make()
            seconds[source] = time.monotonic() - started
        return seconds

    def start(self) -> None:
        self.stop()  # a server left by an interrupted run listens on another port
        self.salesforce.start()
        self.salesforce.admin.set_daily_limit(100_000_000)
        self.board.start()
        self.board.admin.set_daily_limit(100_000_000)
        self.board.admin.set_per_second_limit(False)  # this benchmark is about dbt, not board's rate limit

    def stop(self) -> None:
        self.board.stop()
        self.salesforce.stop()

    def extract(self, warehouse_url: str, *, full_refresh: bool) -> dict[str, dict]:
        """Every Nexpro table, Salesforce object and board resource into the warehouse, as the DAG's extract
        tasks do; per source: seconds and rows read."""
        from simple_salesforce import Salesforce

        from csops.extract.board import BOARD_RESOURCES, BoardClient, load_resource
        from csops.extract.engine import load_table
        from csops.extract.nexpro_tables import NEXPRO_TABLES, RAW_SCHEMA, SOURCE_NAME
        from csops.extract.salesforce import CountingSession, SalesforceApi, load_object
        from csops.extract.salesforce_objects import SALESFORCE_OBJECTS

        run_id = f"bench-dbt-{time.time():.0f}"
        figures = {}

        def timed(source: str, loads) -> None:
            started, rows = time.monotonic(), 0
            for load in loads:
                result = load()
                if result.status != "succeeded":
                    raise SystemExit(f"{source} extract {result.table_name}: {result.status} ({result.error})")
                rows += result.rows_read
            figures[source] = {"seconds": time.monotonic() - started, "rows": rows}
            say(f"  {source}: {rows:,} rows in {figures[source]['seconds']:.1f}s")

        timed("nexpro", [lambda table=table: load_table(
            self.urls["nexpro"], warehouse_url, table, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA,
            run_id=run_id, full_refresh=full_refresh) for table in NEXPRO_TABLES])

        os.environ["REQUESTS_CA_BUNDLE"] = str(self.salesforce.ca_bundle())
        login = self.salesforce.credentials()

        def connect(session):
            session.proxies.update(self.salesforce.proxies())
            return Salesforce(username=login.username, password=login.password,
                              security_token=login.security_token, session=session)

        api = SalesforceApi(connect, CountingSession(reserve_share=0.0))
        timed("salesforce", [lambda name=name: load_object(api, warehouse_url, name, run_id=run_id,
                                                           full_refresh=full_refresh, bulk_poll_seconds=0.2)
                             for name in SALESFORCE_OBJECTS])

        values = self.board.credentials()
        client = BoardClient(self.board.base_url, values["api_key"], values["token"], requests_per_second=1000)
        timed("board", [lambda resource=resource: load_resource(client, warehouse_url, resource, run_id=run_id,
                                                                full_refresh=full_refresh)
                        for resource in BOARD_RESOURCES])
        return figures


def forget_test_passes(warehouse_url: str) -> None:
    """A first build has no earlier test passes: each data test then reads every row (the daily build's
    tests read only the rows written since the full build's passed; dbt_project/macros/data_tests_new_rows.sql)."""
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        if connection.execute("select to_regclass('ops.dbt_node_results')").fetchone()[0]:
            connection.execute("truncate ops.dbt_node_results")


def dbt_build(warehouse_url: str, target: Path, run_date: date, history_days: int, threads: int,
              *extra: str) -> dict:
    """One `dbt build` as of `run_date`; its wall time and, per node, time, rows written and materialization."""
    from csops.local_stack import dbt_environment

    project = REPO_ROOT / "dbt_project"
    variables = {"run_date": run_date.isoformat(), "health_history_days": history_days,
                 "usage_history_days": history_days, "signal_history_days": history_days}
    command = [str(Path(sys.executable).parent / "dbt"), "build", *extra, "--project-dir", str(project),
               "--profiles-dir", str(project), "--target-path", str(target), "--log-path", str(target / "logs"),
               "--threads", str(threads), "--vars", json.dumps(variables)]
    environment = {**os.environ, **dbt_environment(warehouse_url), "CS_AIRFLOW_RUN_ID": f"bench-{run_date}"}
    started = time.monotonic()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        failed = [line for line in completed.stdout.splitlines() if "ERROR" in line or "FAIL" in line]
        raise SystemExit(f"dbt build for {run_date} failed ({target / 'logs' / 'dbt.log'}):\n"
                         + "\n".join(failed[-20:] or completed.stdout.splitlines()[-30:]))
    manifest = json.loads((target / "manifest.json").read_text())
    known = {**manifest["nodes"], **manifest["unit_tests"]}
    nodes = {}
    for result in json.loads((target / "run_results.json").read_text())["results"]:
        node = known.get(result["unique_id"], {"name": result["unique_id"], "resource_type": "other"})
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        nodes[result["unique_id"]] = {
            "name": node["name"], "type": node["resource_type"],
            "materialized": node["config"].get("materialized") if node["resource_type"] == "model" else "",
            "seconds": result["execution_time"], "rows": rows if isinstance(rows, int) and rows >= 0 else None}
    figures = {"run_date": run_date.isoformat(), "seconds": seconds, "nodes": nodes}
    (target / "bench-figures.json").write_text(json.dumps(figures, indent=1))
    return figures


def print_report(world, run_date: date, history_days: int, threads: int, full: dict, daily: dict, extract: dict,
                 one_time: dict) -> None:
    def rows(value) -> str:
        return "" if value is None else f"{value:,}"

    print(f"\ndbt build: full (run_date {full.get('run_date')}) vs daily increment (run_date "
          f"{run_date + timedelta(days=1)}). "
          f"World: {world.accounts:,} companies x {world.days} days from {world.start_date}, seed {world.seed}, "
          f"attendee_scale {world.attendee_scale}; history vars {history_days} days; dbt threads {threads}; "
          f"{os.cpu_count()} cores")
    if one_time:
        print("One-time preparation this run: "
              + ", ".join(f"{step} {seconds:.0f}s" for step, seconds in one_time.items()))
    models = [uid for uid, node in full["nodes"].items() if node["type"] == "model"]
    models.sort(key=lambda uid: -(full["nodes"][uid]["seconds"] + daily["nodes"].get(uid, {}).get("seconds", 0)))
    print(f"\n{'model':<44} {'materialized':<12} {'full s':>8} {'full rows':>12} {'+1 day s':>9} "
          f"{'+1 day rows':>12}")
    for uid in models[:TOP_MODELS]:
        node, next_day = full["nodes"][uid], daily["nodes"].get(uid, {})
        print(f"{node['name']:<44} {node['materialized']:<12} {node['seconds']:>8.1f} {rows(node['rows']):>12} "
              f"{next_day.get('seconds', 0):>9.1f} {rows(next_day.get('rows')):>12}")
    rest = models[TOP_MODELS:]
    print(f"{f'({len(rest)} other models)':<44} {'':<12} "
          f"{sum(full['nodes'][uid]['seconds'] for uid in rest):>8.1f} {'':>12} "
          f"{sum(daily['nodes'].get(uid, {}).get('seconds', 0) for uid in rest):>9.1f}")
    for kind in ("test", "unit_test", "seed"):
        count = sum(node["type"] == kind for node in full["nodes"].values())
        print(f"{f'{kind}s ({count})':<44} {'':<12} "
              f"{sum(n['seconds'] for n in full['nodes'].values() if n['type'] == kind):>8.1f} {'':>12} "
              f"{sum(n['seconds'] for n in daily['nodes'].values() if n['type'] == kind):>9.1f}")
    ratio = daily["seconds"] / full["seconds"]
    print(f"{'dbt build, wall clock':<44} {'':<12} {full['seconds']:>8.1f} {'':>12} {daily['seconds']:>9.1f}")
    print(f"\nExtract of day {run_date + timedelta(days=1)} (incremental, before the daily build): "
          + ", ".join(f"{source} {figures['rows']:,} rows {figures['seconds']:.1f}s"
                      for source, figures in extract.items())
          + f"; total {sum(f['seconds'] for f in extract.values()):.1f}s")
    print(f"Daily dbt build / full dbt build: {ratio:.1%}  (goal <= {GOAL_RATIO:.0%}: "
          f"{'met' if ratio <= GOAL_RATIO else 'missed'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end-date", default="2026-11-22", help="the world's last day, the first run's D (a Sunday)")
    parser.add_argument("--attendee-scale", type=float, default=0.1,
                        help="the world's attendee_scale: attendees per webinar relative to the product (0.1)")
    parser.add_argument("--history-days", type=int, default=365,
                        help="health_history_days, usage_history_days and signal_history_days (365)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="drop the benchmark's databases first")
    parser.add_argument("--daily-only", action="store_true",
                        help="skip the full build: add one more day to the warehouse the last run left, time its "
                             "daily build, and compare it with the last full build's figures")
    arguments = parser.parse_args()

    from csops.local_postgres import LocalPostgres, ensure_database
    from csops.sandbox.world import WorldParams

    world = WorldParams(arguments.accounts, arguments.days, arguments.seed, date.fromisoformat(arguments.end_date),
                        arguments.attendee_scale)
    home = Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local"))
    work = home / "bench-dbt"
    server = LocalPostgres(home / "bench-postgres", int(os.environ.get("CS_BENCH_PG_PORT", "54339")))
    started_server = server.start()
    admin = server.url("postgres")
    prefix = f"bdbt_{world.accounts}x{world.days}"
    warehouse = f"{prefix}_warehouse"
    warehouse_url = server.url(warehouse)
    sources = Sources(server, prefix, home)
    one_time = {}
    try:
        if arguments.rebuild:
            for name in (warehouse, *(url.rsplit("/", 1)[1] for url in sources.urls.values())):
                drop(admin, name)
        for url in sources.urls.values():
            ensure_database(admin, url.rsplit("/", 1)[1])
        say(f"The sources: {world.accounts:,} companies x {world.days} days to {world.end_date}, attendee_scale "
            f"{world.attendee_scale} (generated once; each run adds one day)")
        # D: the world's end date on the first run, then the day the last run added (a run that stopped between
        # two sources' extensions has the others brought to that day too)
        run_date = max([world.end_date, *filter(None, sources_through(sources.urls).values())])
        built = sources.build(world, run_date)
        one_time.update({f"{source} world": seconds for source, seconds in built.items() if seconds > 5})
        next_day = run_date + timedelta(days=1)
        sources.start()
        if loaded_through(warehouse_url if database_exists(admin, warehouse) else None) != run_date:
            say(f"Extracting the sources through {run_date} in full into {warehouse} (when the warehouse is not "
                "already there from the last run)")
            recreate(admin, warehouse)
            started = time.monotonic()
            sources.extract(warehouse_url, full_refresh=True)
            one_time["full extract"] = time.monotonic() - started
            record_loaded_through(warehouse_url, run_date)

        saved = work / "full" / "bench-figures.json"
        if arguments.daily_only:
            if "full extract" in one_time or not saved.exists():
                raise SystemExit("--daily-only needs the warehouse and the full build figures of an earlier run; "
                                 "run without it first")
            full = json.loads(saved.read_text())
            say(f"Comparing with the last full build ({full.get('run_date')}, {full['seconds']:.1f}s)")
        else:
            say(f"dbt build --full-refresh, run_date {run_date} ...")
            forget_test_passes(warehouse_url)
            full = dbt_build(warehouse_url, work / "full", run_date, arguments.history_days, arguments.threads,
                             "--full-refresh")
            say(f"  {full['seconds']:.1f}s")

        say(f"Adding {next_day} to the sources")
        sources.build(world, next_day)
        say(f"Extracting {next_day} incrementally")
        extract = sources.extract(warehouse_url, full_refresh=False)
        record_loaded_through(warehouse_url, next_day)

        say(f"dbt build, run_date {next_day} ...")
        daily = dbt_build(warehouse_url, work / "daily", next_day, arguments.history_days, arguments.threads)
        say(f"  {daily['seconds']:.1f}s")
    finally:
        sources.stop()
        if started_server:
            server.stop()
    print_report(world, run_date, arguments.history_days, arguments.threads, full, daily, extract, one_time)


if __name__ == "__main__":
    main()
