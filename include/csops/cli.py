"""`csops` — the command line behind `make run` and `make warehouse`.

    csops run [--accounts 200 --days 180 --seed 42 --date YYYY-MM-DD --full-refresh all|TABLE,... --rebuild-marts
               --dry-run]
        The daily job on this machine: warehouse up, Nexpro, Salesforce and board sandboxes ready
        (their history ending on the date), the mail catcher and the Slack sink up, Airflow's
        `cs_daily` DAG run with `airflow dags test` as the scheduled run that computes the date
        (default: yesterday in Tokyo, the last complete day), then `cs_activation` for that date
        (write-back, playbooks, Slack), a summary of each, and everything it started stopped.
    csops sandbox nexpro|salesforce|board --accounts N --days D --seed S [--end-date YYYY-MM-DD]
        Build (or extend) the Nexpro sandbox database and write the world manifest, or seed the
        Salesforce sandbox org or the board billing sandbox from the same world.
    csops warehouse
        Keep the local warehouse up on 127.0.0.1 for psql or a BI tool until Ctrl-C.
    csops writeback [--date YYYY-MM-DD --dry-run --resend all|OBJECT,...]
        Write the activation models' changes back to Salesforce (connection salesforce_default, else the
        local sandbox org) as the daily run does; --dry-run only reports what would be sent; --resend makes
        the ledger forget those objects first, so their rows are sent in full.
    csops rubric diff
        Which companies the working copy's health rubric (dbt_project/seeds/health/, edits not committed yet)
        would move against the rubric the warehouse last scored with: on the latest scored date, each
        company's score and status before and after. Builds nothing; changes nothing.
    csops activation run [--date YYYY-MM-DD --dry-run --override-killswitch]
        The activation of a date in this process, as cs_activation's tasks do it (killswitch, write-back,
        playbooks, digest), for running it without the scheduler.
    csops activation unknown [--date YYYY-MM-DD]
        The firings whose fate is unknown (the process sending them died before it could record the outcome).
    csops activation resend --firing KEY [--firing KEY ...]
        Send unknown e-mails or Slack posts (a company's, the digest, the killswitch alert) again, once you
        have checked that they never arrived.
    csops ui [--accounts 200 --days 180 --seed 42]
        A real Airflow 3 on 127.0.0.1 (port CS_AIRFLOW_PORT, 8080): the stack and sandbox as for `run`, then
        api-server, scheduler (LocalExecutor), dag-processor and triggerer until Ctrl-C.
    csops dashboards [--accounts 200 --days 180 --seed 42]
        The CS dashboards (Streamlit, dashboards/app.py) on 127.0.0.1 (port CS_DASHBOARDS_PORT, 8501) against
        the warehouse until Ctrl-C; when the local warehouse has no dashboard marts yet, the daily job runs
        first for that world, as `csops run` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import pendulum

from csops import settings
from csops.local_stack import airflow_environment, dbt_environment, local_server, local_stack
from csops.run_progress import RunProgress

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
    """`--full-refresh all` or a comma-separated list of Nexpro tables and Salesforce objects, checked."""
    from csops.extract.board_resources import BOARD_RESOURCES
    from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME
    from csops.extract.salesforce_objects import SALESFORCE_OBJECTS

    if not value:
        return []
    known = [*NEXPRO_TABLES_BY_NAME, *SALESFORCE_OBJECTS, *BOARD_RESOURCES]
    tables = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in tables if name != "all" and name not in known]
    if unknown:
        raise SystemExit(f"--full-refresh: unknown table(s) {', '.join(unknown)}; use 'all' or some of: "
                         f"{', '.join(known)}")
    return tables


def build_nexpro_sandbox(nexpro_url: str, accounts: int, days: int, seed: int, end_date: date) -> dict:
    from csops.sandbox.nexpro.generator import build_world
    from csops.sandbox.world import WorldParams, plan_companies, write_manifest

    outcome = build_world(nexpro_url, WorldParams(accounts, days, seed, end_date), progress=log.info)
    world = outcome["world"]
    manifest = write_manifest(settings.world_dir() / "manifest.json", world, plan_companies(world))
    log.info("world manifest: %s", manifest)
    return outcome


def build_salesforce_sandbox(database_url: str, accounts: int, days: int, seed: int, end_date: date) -> dict:
    from csops.sandbox.salesforce.seed import seed_org
    from csops.sandbox.world import WorldParams

    return seed_org(database_url, WorldParams(accounts, days, seed, end_date), progress=log.info)


def build_board_sandbox(database_url: str, accounts: int, days: int, seed: int, end_date: date) -> dict:
    from csops.sandbox.board.seed import seed_board
    from csops.sandbox.world import WorldParams

    return seed_board(database_url, WorldParams(accounts, days, seed, end_date), progress=log.info)


def build_sandboxes(stack, arguments: argparse.Namespace, end_date: date) -> list[str]:
    """The sandbox source systems the stack runs locally, with the world's history ending on `end_date`.

    Returns the tables to reload in full: those of a sandbox that now holds a new world. Its rows reuse
    keys and timestamps of the world the warehouse copied before, which no incremental load can sort out.
    """
    from csops.extract.board_resources import BOARD_RESOURCES
    from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME
    from csops.extract.salesforce_objects import SALESFORCE_OBJECTS

    reload = []
    if not settings.configured_nexpro_url():
        built = build_nexpro_sandbox(stack.nexpro_url, arguments.accounts, arguments.days, arguments.seed, end_date)
        if built["action"] == "generated":
            reload += NEXPRO_TABLES_BY_NAME
    if stack.salesforce_sandbox is not None:
        seeded = build_salesforce_sandbox(stack.salesforce_sandbox.database_url, arguments.accounts, arguments.days,
                                          arguments.seed, end_date)
        if seeded["action"] == "seeded":
            reload += SALESFORCE_OBJECTS
    if stack.board_sandbox is not None:
        billed = build_board_sandbox(stack.board_sandbox.database_url, arguments.accounts, arguments.days,
                                     arguments.seed, end_date)
        if billed["action"] == "generated":
            reload += BOARD_RESOURCES
    if reload:
        log.info("new sandbox world: %s reloaded in full", ", ".join(reload))
    return reload


def step(title: str, command: list[str], environment: dict[str, str], *, log_file: Path | None = None,
         on_line: Callable[[str], None] | None = None, on_end: Callable[[], None] | None = None,
         **options) -> None:
    """Run one stage of the job. With `log_file`, its output goes there (each line also to `on_line`,
    then `on_end` once the output ends)."""
    started = time.monotonic()
    if log_file is None:
        log.info("%s: %s", title, " ".join(command))
        returncode = subprocess.run(command, env=environment, **options).returncode
    else:
        log.info("%s ...", title)
        with log_file.open("a", encoding="utf-8") as sink:
            sink.write(f"\n===== {title}: {' '.join(command)}\n")
            sink.flush()
            process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, errors="replace", **options)
            try:
                for line in process.stdout:
                    sink.write(line)
                    if on_line is not None:
                        on_line(line)
                returncode = process.wait()
                if on_end is not None:
                    on_end()
            finally:
                if process.poll() is None:  # Ctrl-C or an error here: do not leave Airflow running
                    process.terminate()
                    process.wait(timeout=30)
    if returncode != 0:
        where = f"the full output is in {log_file}" if log_file else "its output is above"
        raise SystemExit(f"{title} failed (exit {returncode}); {where}.")
    log.info("%s done in %.1fs", title, time.monotonic() - started)


def new_run_log() -> Path:
    """A fresh file under .local/logs/ for the full Airflow and dbt output of one `csops run`."""
    folder = settings.local_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"


def migrate_airflow(environment: dict[str, str], log_file: Path | None = None) -> None:
    """Migrate Airflow's metadata DB once per Airflow version; later runs skip the migration."""
    stamp = Path(environment["AIRFLOW_HOME"]) / f".migrated-{version('apache-airflow')}"
    if not stamp.exists():
        quiet = {} if log_file else {"stdout": subprocess.DEVNULL}
        step("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], environment, log_file=log_file, **quiet)
        stamp.touch()


def manifest_is_current(project: Path) -> bool:
    """Whether target/manifest.json is newer than every file of the dbt project it was parsed from."""
    manifest = project / "target" / "manifest.json"
    if not manifest.exists():
        return False
    generated = {project / folder for folder in ("target", "logs", "dbt_packages")}
    sources = (path for path in project.rglob("*") if path.is_file() and not generated & set(path.parents))
    return all(path.stat().st_mtime < manifest.stat().st_mtime for path in sources)


def parse_dbt(environment: dict[str, str], log_file: Path | None = None) -> None:
    """Write dbt_project/target/manifest.json, from which Cosmos renders one Airflow task per dbt node.

    Skipped (saving ~5 s a run) when the manifest is newer than every file of the project."""
    if manifest_is_current(settings.dbt_project_dir()):
        log.info("dbt manifest is up to date; not parsing again")
        return
    project = str(settings.dbt_project_dir())
    step("dbt parse", [str(BIN / "dbt"), "parse", "--project-dir", project, "--profiles-dir", project, "--quiet"],
         environment, log_file=log_file)


def command_run(arguments: argparse.Namespace) -> None:
    from csops.summary import format_summary, latest_run_id, run_summary, stored_summary

    run_date = date.fromisoformat(arguments.date) if arguments.date else last_complete_business_day()
    conf = {"full_refresh": full_refresh_tables(arguments.full_refresh), "rebuild_marts": arguments.rebuild_marts}
    started = time.monotonic()
    with local_stack() as stack:
        reload = build_sandboxes(stack, arguments, run_date)
        if reload:  # the marts still hold the old world's history too
            conf["rebuild_marts"] = True
            if "all" not in conf["full_refresh"]:
                conf["full_refresh"] = sorted(set(conf["full_refresh"]) | set(reload))
        # No retries locally: a failing task should fail the run now, not in ten minutes.
        environment = airflow_environment(stack, CS_TASK_RETRIES="0")
        log_file = new_run_log()
        log.info("full Airflow and dbt output of this run: %s", log_file)
        migrate_airflow(environment, log_file)
        parse_dbt(environment, log_file)
        progress = RunProgress(log.info)
        failure = None
        try:
            step(f"cs_daily computing {run_date}",
                 [str(BIN / "airflow"), "dags", "test", "cs_daily", logical_date_computing(run_date),
                  "--conf", json.dumps(conf)], environment, log_file=log_file, on_line=progress.feed,
                 on_end=progress.finish)
        except SystemExit as error:
            failure = error
        run_id = latest_run_id(stack.warehouse_url)
        if run_id:
            summary = stored_summary(stack.warehouse_url, run_id)
            print("\n" + (summary or format_summary(run_summary(stack.warehouse_url, run_id))))
        if not failure:
            # What the scheduler does once cs_daily has updated the marts' Assets: the activation for that date.
            try:
                step(f"cs_activation for {run_date}",
                     [str(BIN / "airflow"), "dags", "test", "cs_activation", logical_date_computing(run_date),
                      "--conf", json.dumps({"run_date": run_date.isoformat(), "dry_run": arguments.dry_run})],
                     environment, log_file=log_file)
            except SystemExit as error:
                failure = error
            activation_run = latest_run_id(stack.warehouse_url)
            if activation_run and activation_run != run_id:
                print("\n" + (stored_summary(stack.warehouse_url, activation_run) or ""))
        if failure:
            print(f"\nThe run failed: what failed is listed first above. The full output, every task's log "
                  f"included, is in {log_file} (search it for the task id).")
            raise failure
    print(f"\nDone in {time.monotonic() - started:.0f}s. The marts are in the warehouse's `marts` schema "
          f"(staging views in `staging`, raw copies in `raw_nexpro`, `raw_salesforce` and `raw_board`, "
          f"data-quality issues in `marts.dq_identity_issues`, run audit in `ops`).")
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
    configured = settings.configured_nexpro_url()
    if arguments.system == "nexpro" and configured:
        # A server of its own (docker compose's `sources`): no embedded server, no warehouse needed.
        build_nexpro_sandbox(configured, arguments.accounts, arguments.days, arguments.seed, end_date)
        return
    with local_stack(salesforce=arguments.system == "salesforce", board=arguments.system == "board",
                     channels=False) as stack:
        world = (arguments.accounts, arguments.days, arguments.seed, end_date)
        if arguments.system == "nexpro":
            build_nexpro_sandbox(stack.nexpro_url, *world)
        elif arguments.system == "salesforce" and stack.salesforce_sandbox is not None:
            build_salesforce_sandbox(stack.salesforce_sandbox.database_url, *world)
        elif arguments.system == "board" and stack.board_sandbox is not None:
            build_board_sandbox(stack.board_sandbox.database_url, *world)
        else:
            raise SystemExit(f"AIRFLOW_CONN_{arguments.system.upper()}_DEFAULT points at a configured service; "
                             f"its sandbox is not used")


def command_writeback(arguments: argparse.Namespace) -> None:
    from csops.activation.writeback import SYNC_OBJECTS, WritebackError, resend, write_back
    from csops.extract.salesforce import CountingSession, SalesforceApi, connect_with_hook

    run_date = date.fromisoformat(arguments.date) if arguments.date else last_complete_business_day()
    with local_stack(salesforce=not arguments.dry_run, board=False) as stack:
        if arguments.resend:
            names = ([sync.object_name for sync in SYNC_OBJECTS] if arguments.resend == "all"
                     else [name.strip() for name in arguments.resend.split(",") if name.strip()])
            try:
                resend(stack.warehouse_url, names)
            except ValueError as error:
                raise SystemExit(str(error)) from None
        sf = None
        if not arguments.dry_run:
            os.environ.update(stack.airflow_connections())
            # As the DAG's: the session stops before a call would eat into the budget's reserve.
            sf = SalesforceApi(connect_with_hook(settings.SALESFORCE_CONN_ID),
                               CountingSession(reserve_share=settings.salesforce_api_reserve()))
        try:
            report = write_back(stack.warehouse_url, sf, run_date, dry_run=arguments.dry_run)
        except WritebackError as error:
            raise SystemExit(str(error)) from None
        print("\n".join(report.lines()))
        if not report.ok:
            raise SystemExit(1)


def command_activation(arguments: argparse.Namespace) -> None:
    import psycopg
    import requests

    from csops.activation.channels import ChannelSenders
    from csops.activation.day import activate, resend
    from csops.activation.ledger import ActivationBusy, unknown_firings
    from csops.extract.salesforce import connect_with_hook

    run_date = date.fromisoformat(arguments.date) if getattr(arguments, "date", None) else None
    sends = arguments.action == "resend" or (arguments.action == "run" and not arguments.dry_run)
    with local_stack(salesforce=sends, board=False, channels=sends) as stack:
        os.environ.update(stack.airflow_connections())
        if arguments.action == "unknown":
            with psycopg.connect(stack.warehouse_url, autocommit=True) as connection:
                rows = unknown_firings(connection, run_date)
            for row in rows:
                print(f"{row['firing_key']}\t{row['action']}\t{row['target'] or ''}\t{row['detail'] or ''}")
            print(f"{len(rows)} firing(s) of unknown fate" + (f" on {run_date}" if run_date else ""))
            return
        sf = connect_with_hook(settings.SALESFORCE_CONN_ID)(requests.Session()) if sends else None
        run_id = f"cli__{arguments.action}__{pendulum.now('UTC'):%Y-%m-%dT%H:%M:%S}"
        try:
            if arguments.action == "resend":
                with psycopg.connect(stack.warehouse_url, autocommit=True) as connection:
                    firings = resend(connection, ChannelSenders(sf), arguments.firing, run_id)
                for firing in firings:
                    print(f"{firing.firing_key}: {firing.outcome} ({firing.detail})")
                if any(firing.outcome != "sent" for firing in firings):
                    raise SystemExit(1)
                return
            override_by = f"{os.environ.get('USER', 'someone')} (csops activation run)" \
                if arguments.override_killswitch else None
            result = activate(stack.warehouse_url, run_date or last_complete_business_day(), sf,
                              dry_run=arguments.dry_run, override_by=override_by, run_id=run_id)
        except (ActivationBusy, ValueError) as error:
            raise SystemExit(str(error)) from None
        print(json.dumps(result, indent=2, default=str))


def command_warehouse(_arguments: argparse.Namespace) -> None:
    with local_stack(salesforce=False, board=False, channels=False) as stack:
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


def command_rubric(arguments: argparse.Namespace) -> None:
    import psycopg

    from csops.rubric import RubricDiffError, compile_rubric_diff, format_rubric_diff, read_rubric_seeds, rubric_diff

    project = settings.dbt_project_dir()
    try:
        proposal = read_rubric_seeds(project / "seeds")
    except FileNotFoundError as error:
        raise SystemExit(f"csops rubric diff: {error}") from None
    with local_stack(salesforce=False, board=False, channels=False) as stack:
        environment = {**dbt_environment(stack.warehouse_url), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            sql = compile_rubric_diff(BIN / "dbt", project, environment, proposal)
            with psycopg.connect(stack.warehouse_url) as connection:
                diff = rubric_diff(connection, sql)
        except (RubricDiffError, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as error:
            raise SystemExit(f"csops rubric diff: {error}".rstrip()
                             + ("" if isinstance(error, RubricDiffError) else
                                "\nThe warehouse has no health scores with rubric versions yet: run the daily job "
                                "(make run; after an upgrade, make run ARGS=--rebuild-marts).")) from None
    print(format_rubric_diff(diff))


def command_ui(arguments: argparse.Namespace) -> None:
    from csops import local_airflow

    # Started in the background by a script, csops inherits SIGINT ignored; `kill -INT` must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    port = local_airflow.airflow_port()
    local_airflow.ensure_port_free(port)
    try:
        with local_stack() as stack:
            build_sandboxes(stack, arguments, last_complete_business_day())
            environment = local_airflow.ui_environment(stack, port)
            setup_log = local_airflow.ui_log_dir() / "setup.log"
            setup_log.parent.mkdir(parents=True, exist_ok=True)
            migrate_airflow(environment, setup_log)
            parse_dbt(environment, setup_log)
            started = time.monotonic()
            with local_airflow.AirflowServices(environment, port, setup_log.parent) as services:
                services.wait_until_ready()
                print(local_airflow.ready_banner(services, environment, time.monotonic() - started), flush=True)
                services.watch()
    except local_airflow.ServiceError as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        print("Stopped.")


def command_dashboards(arguments: argparse.Namespace) -> None:
    from csops import local_airflow
    from csops.dashboards.server import Dashboards, DashboardsDied, missing_marts, warehouse

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as `csops ui`: `kill -INT` must stop it
    port = settings.dashboards_port()
    local_airflow.ensure_port_free(port, "CS_DASHBOARDS_PORT")
    def serve(url: str) -> None:
        log_file = settings.local_dir() / "logs" / "dashboards.log"
        with Dashboards(url, port, log_file, settings.dashboards_host()) as server:
            server.wait_until_ready()
            print(server.banner(), flush=True)
            server.watch()

    try:
        with warehouse() as url:
            # A configured warehouse is built by its own Airflow: its pages say what is missing. The local one
            # is built here on first use.
            missing = missing_marts(url) if not settings.configured_warehouse_url() else []
            if not missing:
                serve(url)
        if missing:
            log.info("the warehouse has no %s yet: running the daily job first", ", ".join(missing))
            command_run(argparse.Namespace(**vars(arguments), date=None, full_refresh=None, rebuild_marts=False,
                                           dry_run=settings.activation_dry_run()))
            with warehouse() as url:
                serve(url)
    except DashboardsDied as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        print("Stopped.")


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
                     help="reload these Nexpro tables / Salesforce objects from scratch: 'all' or a "
                          "comma-separated list")
    run.add_argument("--rebuild-marts", action="store_true",
                     help="rebuild the incremental marts from scratch (dbt --full-refresh)")
    run.add_argument("--dry-run", action="store_true", default=settings.activation_dry_run(),
                     help="the activation records what it would write back and fire, and sends nothing "
                          "(default: CS_ACTIVATION_DRY_RUN)")
    run.set_defaults(handler=command_run)
    sandbox = commands.add_parser("sandbox", help="build the sandbox source systems")
    sandbox.add_argument("system", choices=["nexpro", "salesforce", "board"])
    add_world_arguments(sandbox)
    sandbox.add_argument("--end-date", help="last day of product history, YYYY-MM-DD "
                                            "(default: yesterday in Tokyo)")
    sandbox.set_defaults(handler=command_sandbox)
    warehouse = commands.add_parser("warehouse", help="keep the local warehouse up until Ctrl-C")
    warehouse.set_defaults(handler=command_warehouse)
    writeback = commands.add_parser("writeback", help="write the activation models' changes back to Salesforce")
    writeback.add_argument("--date", help="the run date the activation models were built for, YYYY-MM-DD "
                                          "(default: yesterday in Asia/Tokyo)")
    writeback.add_argument("--dry-run", action="store_true", help="report what would be sent; call nothing")
    writeback.add_argument("--resend", metavar="OBJECTS",
                           help="send these objects in full: 'all' or a comma-separated list, e.g. Usage__c")
    writeback.set_defaults(handler=command_writeback)
    rubric = commands.add_parser("rubric", help="the health-score rubric: what an edit would change")
    rubric.add_argument("action", choices=["diff"],
                        help="diff: the companies the working copy's rubric would move, before it is committed")
    rubric.set_defaults(handler=command_rubric)
    activation = commands.add_parser("activation", help="the activation of a date: run it, list or re-send the "
                                                        "firings of unknown fate")
    actions = activation.add_subparsers(dest="action", required=True)
    activation_run = actions.add_parser("run", help="run the activation of a date in this process")
    activation_run.add_argument("--date", help="the run date, YYYY-MM-DD (default: yesterday in Asia/Tokyo)")
    activation_run.add_argument("--dry-run", action="store_true", default=settings.activation_dry_run(),
                                help="record what would be written back and fired; send nothing")
    activation_run.add_argument("--override-killswitch", action="store_true",
                                help="fire even though the killswitch holds the date, after checking its inputs")
    unknown = actions.add_parser("unknown", help="list the firings of unknown fate")
    unknown.add_argument("--date", help="only this run date, YYYY-MM-DD")
    resend_parser = actions.add_parser("resend", help="send unknown e-mails or Slack lines again, after checking")
    resend_parser.add_argument("--firing", action="append", required=True, metavar="KEY",
                               help="a firing key from `csops activation unknown` (repeat for several)")
    activation.set_defaults(handler=command_activation)
    ui = commands.add_parser("ui", help="a real Airflow 3 with its UI on 127.0.0.1 until Ctrl-C")
    add_world_arguments(ui)
    ui.set_defaults(handler=command_ui)
    dashboards = commands.add_parser("dashboards", help="the CS dashboards on 127.0.0.1 until Ctrl-C")
    add_world_arguments(dashboards)
    dashboards.set_defaults(handler=command_dashboards)
    arguments = parser.parse_args(argv)
    arguments.handler(arguments)


if __name__ == "__main__":
    main()
