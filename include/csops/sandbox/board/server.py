"""Run the board sandbox as a background process, and reach it as a client.

The sandbox keeps its state in a home folder: the credentials (`credentials.json`, mode 0600: the
account's API key, a full access token, a restricted token that may not read invoices, and the admin
token), the pid file and the log. Its data lives in the Postgres database given by URL. It serves plain
HTTP on 127.0.0.1; clients point their configurable board base URL at `base_url`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from csops.sandbox.board.app import ADMIN_TOKEN_HEADER

# The server process reads the database URL from here (kept off the command line, which others can see).
DATABASE_URL_VARIABLE = "CSOPS_BOARD_SANDBOX_DATABASE_URL"
ALL_RESOURCES = ["clients", "projects", "invoices"]


def credentials_file(home: Path) -> Path:
    return home / "credentials.json"


def ensure_credentials(home: Path) -> dict:
    """The API key, the access tokens with their permissions and the admin token, generated on first use."""
    path = credentials_file(home)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        token, restricted = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        values = {"api_key": secrets.token_hex(20), "token": token, "restricted_token": restricted,
                  "tokens": {token: ALL_RESOURCES, restricted: ["clients", "projects"]},
                  "admin_token": secrets.token_urlsafe(32)}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(values, handle, indent=2)
    return json.loads(path.read_text())


@dataclass
class BoardAdmin:
    """The sandbox's admin API (not part of board): the daily budget, the per-second limit, usage."""

    base_url: str
    token: str

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/sandbox/admin/{path}", json=body, timeout=30,
                                    headers={ADMIN_TOKEN_HEADER: self.token})
        if response.status_code >= 400:
            raise RuntimeError(f"board sandbox admin {method} {path} failed ({response.status_code}): {response.text}")
        return response.json()

    def usage(self) -> dict:
        """Today's calls of the API key: `{"used": …, "daily_limit": …, "per_second_limit": bool}`."""
        return self._call("GET", "usage")

    def set_daily_limit(self, limit: int) -> dict:
        return self._call("PUT", "limits", {"daily_limit": limit})

    def set_per_second_limit(self, enabled: bool) -> dict:
        return self._call("PUT", "limits", {"per_second_limit": enabled})

    def reset_usage(self) -> dict:
        return self._call("POST", "usage/reset")


@dataclass
class BoardSandbox:
    home: Path
    database_url: str
    port: int
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials(self) -> dict:
        return ensure_credentials(self.home)

    def airflow_connection(self) -> dict:
        """The Airflow connection (AIRFLOW_CONN_BOARD_DEFAULT as JSON) the board hook reads."""
        values = self.credentials()
        return {"conn_type": "http", "host": self.base_url, "password": values["token"],
                "extra": {"api_key": values["api_key"]}}

    def headers(self, token: str | None = None) -> dict:
        """The headers of an API call with the full token (or the given one)."""
        values = self.credentials()
        return {"x-api-key": values["api_key"], "Authorization": f"Bearer {token or values['token']}"}

    @property
    def admin(self) -> BoardAdmin:
        return BoardAdmin(self.base_url, self.credentials()["admin_token"])

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            process = psutil.Process(pid)
            return process.status() != psutil.STATUS_ZOMBIE and "csops.sandbox.board" in " ".join(process.cmdline())
        except psutil.Error:
            return False

    def start(self, timeout: float = 60) -> bool:
        """Start the server unless it already runs; returns True when this call started it."""
        if self.is_running():
            return False
        ensure_credentials(self.home)
        command = [sys.executable, "-m", "csops.sandbox.board", "--home", str(self.home), "--port", str(self.port)]
        environment = {**os.environ, DATABASE_URL_VARIABLE: self.database_url}
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file.write_text(str(self._process.pid))
        self._wait_until_ready(timeout)
        return True

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RuntimeError(f"The board sandbox exited with code {self._process.returncode} while starting. "
                                   f"Its log ({self.log_file}):\n{self._log_tail()}")
            try:
                if requests.get(f"{self.base_url}/sandbox/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"The board sandbox did not answer on port {self.port} within {timeout:.0f} s. If the "
                           f"port is taken, choose another. Its log ({self.log_file}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` seconds)."""
        pid = self._pid()
        if pid is not None and self.is_running():
            process = psutil.Process(pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._process is not None:
            self._process.wait(timeout)
            self._process = None
        self.pid_file.unlink(missing_ok=True)
