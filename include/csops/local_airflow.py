"""A real Airflow 3 on this machine, behind `csops ui` (`make ui`): its four services as separate processes.

`api-server` (the UI and REST API), `scheduler` (with the LocalExecutor, so tasks run in parallel),
`dag-processor` and `triggerer` each run as `airflow <service>` in a process group of their own, with
their output in `.local/logs/ui/<service>.log`. Airflow's metadata lives in the database `airflow` of the
embedded PostgreSQL: four processes and parallel tasks write to it at once, with row locks, where SQLite
has one lock for the whole file (and a history of "database is locked" in Airflow). The local user is
`admin`, with the password Airflow's SimpleAuthManager generates.

`AirflowServices` is a context manager: leaving it — normally, on Ctrl-C, on SIGTERM, or because one
service died — stops all four and then whatever they started (task processes run in process groups of
their own, so every process carrying this session's tag in its environment is found and stopped too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from csops import settings
from csops.local_stack import Stack, airflow_environment

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
# Started in this order; stopped api-server last, so tasks that are shutting down can still report.
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
# Tasks and triggers write their logs to files the api-server reads on this same machine: the log
# servers (for remote workers, listening on every interface, fixed ports 8793/8794) are not started.
SERVICE_ARGUMENTS = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
METADATA_DATABASE = "airflow"
ADMIN_USER = "admin"
HEALTH_PATH = "/api/v2/monitor/health"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Every process the services start inherits this variable: one way leftovers are found at the end (a
# process that renames itself with setproctitle may hide it, so descendants are also tracked while up).
SESSION_VARIABLE = "CSOPS_UI_SESSION"


def airflow_port() -> int:
    return int(os.environ.get("CS_AIRFLOW_PORT", "8080"))


def ui_home() -> Path:
    """AIRFLOW_HOME of the UI: its own, beside `csops run`'s, whose SQLite metadata it does not share."""
    return settings.local_dir() / "airflow-ui"


def ui_log_dir() -> Path:
    return settings.local_dir() / "logs" / "ui"


def ensure_port_free(port: int, variable: str = "CS_AIRFLOW_PORT") -> None:
    """Exit with a clear message when something listens on `port` already; `variable` is the setting to change."""
    with socket.socket() as probe:
        # As the api-server binds: connections of a previous session in TIME_WAIT do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(f"Port {port} on 127.0.0.1 is in use ({error.strerror}); "
                             f"set {variable} to a free port.") from error


def metadata_url(stack: Stack, home: Path) -> str:
    """Airflow's metadata DB: the one AIRFLOW__DATABASE__SQL_ALCHEMY_CONN names, else the database `airflow`
    of the embedded server, else (no embedded server: both URLs configured) SQLite in the UI's home."""
    created = False
    if configured := os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        url = configured
    elif stack.server is None:
        log.warning("no embedded Postgres (both servers are configured): Airflow's metadata goes to SQLite, "
                    "which may report 'database is locked' under load; set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN "
                    "to a Postgres database for a sturdier UI")
        url = f"sqlite:///{home / 'airflow.db'}"
    else:
        with psycopg.connect(stack.server.url("postgres")) as connection:
            created = not connection.execute("select 1 from pg_database where datname = %s",
                                             (METADATA_DATABASE,)).fetchone()
        stack.server.ensure_database(METADATA_DATABASE)
        url = stack.server.url(METADATA_DATABASE).replace("postgresql://", "postgresql+psycopg2://", 1)
    forget_stale_migration(home, url, created)
    return url


def forget_stale_migration(home: Path, url: str, created: bool) -> None:
    """`migrate_airflow` skips the migration when its stamp is in AIRFLOW_HOME; the stamp only holds for the
    database it was made for, so it goes when the database is new or another one is configured."""
    marker = home / ".metadata-db"
    key = hashlib.sha256(url.encode()).hexdigest()
    if created or not marker.exists() or marker.read_text().strip() != key:
        for stamp in home.glob(".migrated-*"):
            stamp.unlink()
        marker.write_text(key + "\n")


def ui_environment(stack: Stack, port: int) -> dict[str, str]:
    """`airflow_environment(stack)` plus what the four services need to work together on 127.0.0.1:port."""
    home = ui_home()
    home.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    environment = airflow_environment(
        stack,
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url(stack, home),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        # The LocalExecutor forks this many workers up front; two per core keeps dbt tasks from thrashing.
        AIRFLOW__CORE__PARALLELISM=os.environ.get("AIRFLOW__CORE__PARALLELISM", str(max(4, 2 * (os.cpu_count() or 2)))),
        AIRFLOW__CORE__AUTH_MANAGER=SIMPLE_AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=base_url,
        # Tasks report to the api-server's Execution API; by default Airflow would look on port 8080.
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
        # Scheduler and api-server must sign and check task tokens with the same key: one per session.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
    )
    # The services and the tasks they fork find `airflow`, `dbt` and `csops` beside this interpreter.
    environment["PATH"] = os.pathsep.join([str(BIN), environment.get("PATH", "")])
    return environment


def password_file(environment: dict[str, str]) -> Path:
    configured = environment.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return Path(configured) if configured else Path(environment["AIRFLOW_HOME"]) / \
        "simple_auth_manager_passwords.json.generated"


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ServiceError(RuntimeError):
    """Airflow could not be brought up or kept up; the message says what happened and where to look."""


class ServiceDied(ServiceError):
    def __init__(self, service: Service):
        self.service = service
        code = service.process.returncode
        how = f"exit {code}"
        if code < 0:
            with suppress(ValueError):
                how = f"killed by {signal.Signals(-code).name}"
        super().__init__(f"Airflow's {service.name} stopped on its own ({how}); "
                         f"the other services were stopped. Last lines of {service.log_file}:\n"
                         f"{log_tail(service.log_file)}")


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log_file: Path


class AirflowServices:
    """The four Airflow services, started on entering and stopped on leaving, whatever the reason."""

    def __init__(self, environment: dict[str, str], port: int, log_dir: Path, *, task_grace: float = 10.0,
                 stop_grace: float = 30.0, airflow: Path = BIN / "airflow"):
        self.airflow = airflow
        self.environment = environment
        self.port = port
        self.log_dir = log_dir
        self.task_grace = task_grace
        self.stop_grace = stop_grace
        self.session = secrets.token_hex(8)
        self.services: list[Service] = []
        self.descendants: dict[int, psutil.Process] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AirflowServices:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exception) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = {**self.environment, SESSION_VARIABLE: self.session}
        for name in SERVICES:
            command = [str(self.airflow), name, *SERVICE_ARGUMENTS.get(name, [])]
            if name == "api-server":
                command += ["--host", "127.0.0.1", "--port", str(self.port)]
            log_file = self.log_dir / f"{name}.log"
            with log_file.open("w", encoding="utf-8") as sink:
                sink.write(f"===== {' '.join(command)}\n")
                sink.flush()
                # A session (and process group) of its own: Ctrl-C in the terminal reaches only csops,
                # which then stops each service in order, and killpg reaches everything in its group.
                process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=sink,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            self.services.append(Service(name, process, log_file))
            log.info("started airflow %s (pid %s), log %s", name, process.pid, log_file)

    def check_alive(self) -> None:
        for service in self.services:
            if service.process.poll() is not None:
                raise ServiceDied(service)

    def health(self) -> dict | None:
        """The api-server's health report, or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_until_ready(self, timeout: float = 300.0) -> dict:
        """Until the api-server answers its health endpoint; raises ServiceDied if a service dies first."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            report = self.health()
            if report is not None:
                return report
            if time.monotonic() > deadline:
                api = self.services[0]
                raise ServiceError(f"The api-server did not answer on {self.url} within {timeout:.0f}s. "
                                   f"Last lines of {api.log_file}:\n{log_tail(api.log_file)}")
            time.sleep(1)

    def watch(self) -> None:
        """Return never; raise ServiceDied when a service stops on its own."""
        while True:
            self.check_alive()
            self.remember_descendants()
            time.sleep(1)

    def remember_descendants(self) -> None:
        """Note every process below the services now, so one orphaned later is still stopped at the end."""
        self.descendants = {pid: process for pid, process in self.descendants.items() if process.is_running()}
        for service in self.services:
            with suppress(psutil.Error):
                for process in psutil.Process(service.process.pid).children(recursive=True):
                    self.descendants.setdefault(process.pid, process)

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes still alive that the services started: remembered descendants (is_running also checks
        the start time, so a reused pid is not mistaken for one) and whatever carries the session tag."""
        found = {pid: process for pid, process in self.descendants.items() if process.is_running()}
        for process in psutil.process_iter():
            try:
                if process.pid not in found and process.pid != os.getpid() \
                        and process.environ().get(SESSION_VARIABLE) == self.session:
                    found[process.pid] = process
            except psutil.Error:
                continue
        return list(found.values())

    def stop(self) -> None:
        if not self.services:
            return
        # A second Ctrl-C (or SIGTERM) must not cut the shutdown short and leave processes behind.
        previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
        log.info("stopping the Airflow services (running tasks get %.0fs to finish) ...", self.task_grace)
        try:
            self.remember_descendants()
            others = [service for service in self.services if service.name != "api-server"]
            api = [service for service in self.services if service.name == "api-server"]
            for group in (others, api):
                self._stop_group(group)
            leftovers = self.leftover_processes()
            for process in leftovers:
                with suppress(psutil.Error):
                    process.terminate()
            _gone, alive = psutil.wait_procs(leftovers, timeout=10)
            for process in alive:
                with suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs(alive, timeout=5)
            if leftovers:
                log.info("stopped %d leftover process(es) started by Airflow", len(leftovers))
            self.services = []
            log.info("Airflow services stopped")
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _stop_group(self, services: list[Service]) -> None:
        """SIGTERM, which each service handles by stopping its own children; the scheduler then waits for
        running tasks, so after `task_grace` seconds a second SIGTERM tells it not to wait. Whatever is
        still up at `stop_grace` is killed with its process group."""
        started = time.monotonic()
        for round_ in (1, 2):
            for service in services:
                if service.process.poll() is None:
                    with suppress(ProcessLookupError):
                        service.process.terminate()
            until = started + (self.task_grace if round_ == 1 else self.stop_grace)
            for service in services:
                with suppress(subprocess.TimeoutExpired):
                    service.process.wait(timeout=max(0.1, until - time.monotonic()))
        for service in services:
            if service.process.poll() is None:
                log.warning("airflow %s did not stop within %.0fs; killing it", service.name, self.stop_grace)
            # Whatever is left in its process group (the leader may be gone already) is killed.
            _signal_group(service.process.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=10)


def _signal_group(pgid: int, number: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)


def read_admin_password(environment: dict[str, str]) -> str | None:
    try:
        return json.loads(password_file(environment).read_text()).get(ADMIN_USER)
    except (OSError, ValueError):
        return None


def ready_banner(services: AirflowServices, environment: dict[str, str], seconds: float) -> str:
    password = read_admin_password(environment) or f"(not found in {password_file(environment)})"
    logs = "\n".join(f"    {service.name:<14} {service.log_file}" for service in services.services)
    return (f"\nAirflow is up after {seconds:.0f}s: {services.url}\n"
            f"  user {ADMIN_USER}, password {password}\n"
            f"  cs_daily starts paused: Trigger runs it once; switching it on schedules it daily at 06:30 Tokyo\n"
            f"  (and the latest run due starts at once).\n"
            f"  Logs:\n{logs}\n"
            f"  Ctrl-C stops Airflow, then the local Postgres.")
