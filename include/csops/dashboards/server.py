"""Serving the dashboards: Streamlit's server for dashboards/app.py on 127.0.0.1, against one warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from csops import settings

PAGES = ("executive", "manager", "csm", "customer")
DASHBOARD_MARTS = ("dash_executive_monthly", "dash_executive_kpis", "dash_cs_manager", "dash_csm_individual",
                   "dash_customer_360")


class DashboardsDied(RuntimeError):
    """Streamlit's server exited on its own."""


class Dashboards:
    """`streamlit run dashboards/app.py` as a child process; a context manager that stops it on the way out."""

    def __init__(self, warehouse_url: str, port: int, log_file: Path, host: str = "127.0.0.1"):
        self.warehouse_url = warehouse_url
        self.port = port
        self.host = host
        self.log_file = log_file
        self.url = f"http://127.0.0.1:{port}"  # where this machine reaches it, whichever address it binds
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streamlit", "run", str(settings.dashboards_dir() / "app.py"),
                "--server.address", self.host, "--server.port", str(self.port), "--server.headless", "true",
                # nothing leaves the machine, and nothing reloads behind the reader's back
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
                "--server.runOnSave", "false", "--global.developmentMode", "false",
                "--client.toolbarMode", "viewer", "--theme.base", "light"]

    def __enter__(self) -> Dashboards:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "CS_WAREHOUSE_URL": self.warehouse_url}
        environment.pop("AIRFLOW_CONN_CS_WAREHOUSE", None)  # CS_WAREHOUSE_URL is the one the app reads now
        with self.log_file.open("a") as sink:
            self.process = subprocess.Popen(self.command(), env=environment, stdout=sink, stderr=subprocess.STDOUT,
                                            cwd=settings.dashboards_dir())
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise DashboardsDied(f"Streamlit exited ({self.process.returncode}); the end of {self.log_file}:\n"
                                 + "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:]))

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Until Streamlit's health endpoint answers; DashboardsDied if the server exits first."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise DashboardsDied(f"Streamlit did not answer on {self.url} within {timeout:.0f}s; "
                                     f"see {self.log_file}")
            time.sleep(0.5)

    def watch(self) -> None:
        """Return never; DashboardsDied when the server stops on its own."""
        while True:
            self.check_alive()
            time.sleep(1)

    def banner(self) -> str:
        lines = [f"Dashboards are up on {self.url} (Ctrl-C to stop):"]
        lines += [f"  {self.url}/{page}" + {"csm": "?csm=<CSM user id or name>",
                                             "customer": "?company=<company id>"}.get(page, "") for page in PAGES]
        lines.append(f"Server log: {self.log_file}")
        return "\n".join(lines)


@contextmanager
def warehouse() -> Iterator[str]:
    """The warehouse's URL: the configured one, else the embedded server's, started (and then stopped) here if
    nothing else runs it. The dashboards need no source system."""
    configured = settings.configured_warehouse_url()
    if configured:
        yield configured
        return
    from csops.local_stack import local_stack

    with local_stack(salesforce=False, board=False, channels=False) as stack:
        yield stack.warehouse_url


def missing_marts(warehouse_url: str) -> list[str]:
    """The dashboards' marts the warehouse does not have yet."""
    from csops.dashboards.marts import MARTS_SCHEMA, connect, table_exists

    with connect(warehouse_url) as connection:
        return [model for model in DASHBOARD_MARTS if not table_exists(connection, MARTS_SCHEMA, model)]
