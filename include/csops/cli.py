"""`csops` — the command line behind `make run` and `make warehouse`.

    csops run [--accounts 200 --days 180 --seed 42 --date YYYY-MM-DD --full-refresh all|TABLE,...]
        The daily job on this machine: warehouse up, Nexpro sandbox world ready (its history ending on
        the date), Airflow's `cs_daily` DAG run with `airflow dags test` as the scheduled run that
        computes the date (default: yesterday in Tokyo, the last complete day), a summary, and
        everything it started stopped.
    csops sandbox nexpro --accounts N --days D --seed S [--end-date YYYY-MM-DD]
        Build (or extend) the Nexpro sandbox database and write the world manifest.
    csops warehouse
        Keep the local warehouse up on 127.0.0.1 for psql or a BI tool until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pendulum

from csops import settings
from csops.local_stack import airflow_environment, dbt_environment, local_server, local_stack

log = logging.getLogger("csops")
BIN = Path(sys.executable).parent


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=200, help="companies in the sandbox world (200)")
    parser.add_argument("--days", type=int, default=180, help="days of product history (180)")
    parser.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same world")


def last_complete_business_day() -> date:
    """Yesterday in Tokyo: what the 06:30 scheduled run computes, and where the sandbox's history ends."""
    return date.fromisoformat(settings.run_date_for(pendulum.now(settings.BUSINESS_TIMEZONE)))


def logical_date_computing(run_date: date) -> str:
    """The logical date of the scheduled run that computes `run_date`: 06:30 Tokyo on the next day."""
    following = run_date + timedelta(days=1)
    return pendulum.datetime(following.year, following.month, following.day, 6, 30,
                             tz=settings.BUSINESS_TIMEZONE).isoformat()


def full_refresh_tables(value: str | None) -> list[str]:
    """`--full-refresh all` or a comma-separated list of Nexpro tables, checked against the extract list."""
    from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME

    if not value:
        return []
    tables = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in tables if name != "all" and name not in NEXPRO_TABLES_BY_NAME]
    if unknown:
        raise SystemExit(f"--full-refresh: unknown table(s) {', '.join(unknown)}; use 'all' or some of: "
                         f"{', '.join(NEXPRO_TABLES_BY_NAME)}")
    return tables


def build_nexpro_sandbox(nexpro_url: str, accounts: int, days: int, seed: int, end_date: date) -> dict:
    from csops.sandbox.nexpro.generator import build_world
    from csops.sandbox.world import WorldParams, plan_companies, write_manifest

    outcome = build_world(nexpro_url, WorldParams(accounts, days, seed, end_date), progress=log.info)
    world = outcome["world"]
    manifest = write_manifest(settings.world_dir() / "manifest.json", world, plan_companies(world))
    log.info("world manifest: %s", manifest)
    return outcome


def step(title: str, command: list[str], environment: dict[str, str], **options) -> None:
    log.info("%s: %s", title, " ".join(command))
    started = time.monotonic()
    completed = subprocess.run(command, env=environment, **options)
    if completed.returncode != 0:
        raise SystemExit(f"{title} failed (exit {completed.returncode}); its output is above.")
    log.info("%s done in %.1fs", title, time.monotonic() - started)


def migrate_airflow(environment: dict[str, str]) -> None:
    """Create Airflow's SQLite metadata DB once per Airflow version; later runs skip the migration."""
    import airflow

    stamp = Path(environment["AIRFLOW_HOME"]) / f".migrated-{airflow.__version__}"
    if not stamp.exists():
        step("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], environment,
             stdout=subprocess.DEVNULL)
        stamp.touch()


def parse_dbt(environment: dict[str, str]) -> None:
    """Write dbt_project/target/manifest.json, from which Cosmos renders one Airflow task per dbt node."""
    project = str(settings.dbt_project_dir())
    step("dbt parse", [str(BIN / "dbt"), "parse", "--project-dir", project, "--profiles-dir", project, "--quiet"],
         environment)


def command_run(arguments: argparse.Namespace) -> None:
    from csops.summary import format_summary, latest_run_id, run_summary, stored_summary

    run_date = date.fromisoformat(arguments.date) if arguments.date else last_complete_business_day()
    conf = {"full_refresh": full_refresh_tables(arguments.full_refresh)}
    started = time.monotonic()
    with local_stack() as stack:
        if not settings.configured_nexpro_url():
            build_nexpro_sandbox(stack.nexpro_url, arguments.accounts, arguments.days, arguments.seed, run_date)
        # No retries locally: a failing task should fail the run now, not in ten minutes.
        environment = airflow_environment(stack, CS_TASK_RETRIES="0")
        migrate_airflow(environment)
        parse_dbt(environment)
        failure = None
        try:
            step(f"cs_daily computing {run_date}",
                 [str(BIN / "airflow"), "dags", "test", "cs_daily", logical_date_computing(run_date),
                  "--conf", json.dumps(conf)], environment)
        except SystemExit as error:
            failure = error
        run_id = latest_run_id(stack.warehouse_url)
        if run_id:
            summary = stored_summary(stack.warehouse_url, run_id)
            print("\n" + (summary or format_summary(run_summary(stack.warehouse_url, run_id))))
        if failure:
            raise failure
    print(f"\nDone in {time.monotonic() - started:.0f}s. The marts are in the warehouse's `marts` schema "
          f"(staging views in `staging`, raw copies in `raw_nexpro`, run audit in `ops`).")
    print(open_marts_hint())


def open_marts_hint() -> str:
    if settings.configured_warehouse_url():
        return "Open them with the warehouse URL you configured (CS_WAREHOUSE_URL / AIRFLOW_CONN_CS_WAREHOUSE)."
    server = local_server()
    return (f"To open them: `make warehouse` keeps the local warehouse up, then connect BI tools or psql to "
            f"127.0.0.1:{server.port}, database warehouse, user postgres, password in {server.password_file}:\n"
            f"  psql \"postgresql://postgres:$(cat {server.password_file})@127.0.0.1:{server.port}/warehouse\" "
            f"-c 'select * from marts.fct_tenant_daily_usage limit 5'")


def command_sandbox(arguments: argparse.Namespace) -> None:
    end_date = date.fromisoformat(arguments.end_date) if arguments.end_date else last_complete_business_day()
    with local_stack() as stack:
        build_nexpro_sandbox(stack.nexpro_url, arguments.accounts, arguments.days, arguments.seed, end_date)


def command_warehouse(_arguments: argparse.Namespace) -> None:
    with local_stack() as stack:
        variables = dbt_environment(stack.warehouse_url)
        print(f"Warehouse up: host {variables['CS_WAREHOUSE_HOST']} port {variables['CS_WAREHOUSE_PORT']} "
              f"database {variables['CS_WAREHOUSE_DBNAME']} user {variables['CS_WAREHOUSE_USER']}")
        if stack.server is not None:
            print(f"Password: in {stack.server.password_file}")
        print("Ctrl-C to stop.")
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # `kill` and CI timeouts send SIGTERM: turn it into an exit so the servers we started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="csops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daily pipeline end to end on this machine")
    add_world_arguments(run)
    run.add_argument("--date", help="business date to compute, YYYY-MM-DD (default: yesterday in Asia/Tokyo, "
                                    "the last complete day)")
    run.add_argument("--full-refresh", metavar="TABLES",
                     help="reload these Nexpro tables from scratch: 'all' or a comma-separated list")
    run.set_defaults(handler=command_run)
    sandbox = commands.add_parser("sandbox", help="build the sandbox source systems")
    sandbox.add_argument("system", choices=["nexpro"])
    add_world_arguments(sandbox)
    sandbox.add_argument("--end-date", help="last day of product history, YYYY-MM-DD "
                                            "(default: yesterday in Tokyo)")
    sandbox.set_defaults(handler=command_sandbox)
    warehouse = commands.add_parser("warehouse", help="keep the local warehouse up until Ctrl-C")
    warehouse.set_defaults(handler=command_warehouse)
    arguments = parser.parse_args(argv)
    arguments.handler(arguments)


if __name__ == "__main__":
    main()
