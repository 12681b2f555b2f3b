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
from dataclasses import dataclass
from pathlib import Path

import requests

from csops.sandbox.board.app import ADMIN_TOKEN_HEADER
from csops.sandbox.process import SandboxProcess

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

    def set_total_count_header(self, sent: bool) -> dict:
        """Whether list answers carry `X-Total-Count` (board's do; a gateway may strip it)."""
        return self._call("PUT", "limits", {"total_count_header": sent})

    def add_fault(self, action: str, times: int = 1) -> dict:
        """The next `times` API calls answer 503 (`unavailable`) or have their connection cut (`drop`)."""
        return self._call("POST", "faults", {"action": action, "times": times})

    def clear_faults(self) -> dict:
        return self._call("DELETE", "faults")


@dataclass
class BoardSandbox(SandboxProcess):
    port: int

    label = "board sandbox"
    module = "csops.sandbox.board"
    database_url_variable = DATABASE_URL_VARIABLE

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

    def server_arguments(self) -> list[str]:
        return ["--port", str(self.port)]

    def prepare(self) -> None:
        ensure_credentials(self.home)

    def answers(self) -> bool:
        return requests.get(f"{self.base_url}/sandbox/health", timeout=2).status_code == 200
