"""Run the Slack sink as a background process, and reach it as a client.

Its home folder (settings.slack_dir(), `.local/slack` by default) holds `posts.jsonl` and `index.html`
beside `credentials.json` (mode 0600: the webhook's path and the channel it posts to), the pid file and
the log. It serves plain HTTP on 127.0.0.1; the Slack webhook connection points its host at `base_url`.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

import requests

from csops.sandbox.process import SandboxProcess
from csops.sandbox.slack.app import Channel

LOCAL_CHANNEL = "#cs-alerts"


def ensure_credentials(home: Path) -> dict:
    """The webhook path (`T…/B…/secret`, shaped like Slack's) and its channel, generated on first use."""
    path = home / "credentials.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        alphabet = string.ascii_uppercase + string.digits
        team, bot = ("".join(secrets.choice(alphabet) for _ in range(10)) for _ in range(2))
        values = {"webhook_path": f"T{team}/B{bot}/{secrets.token_hex(12)}", "channel": LOCAL_CHANNEL}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(values, handle, indent=2)
    return json.loads(path.read_text())


@dataclass
class SlackSink(SandboxProcess):
    port: int = 0
    database_url: str = field(default="")

    label = "Slack sink"
    module = "csops.sandbox.slack"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def channel(self) -> Channel:
        return Channel(self.home)

    def airflow_connection(self) -> dict:
        """The Airflow connection (AIRFLOW_CONN_SLACK_DEFAULT as JSON) the Slack webhook hook reads: the
        endpoint in `host` (Slack's is hooks.slack.com/services) and the webhook's token in `password`."""
        return {"conn_type": "slackwebhook", "host": f"{self.base_url}/services",
                "password": ensure_credentials(self.home)["webhook_path"], "extra": {"timeout": 10}}

    def fail_next(self, status: int, count: int = 1) -> None:
        """Make the sink answer the next `count` posts with `status` (429 or 500)."""
        requests.post(f"{self.base_url}/sandbox/fail", json={"status": status, "count": count},
                      timeout=5).raise_for_status()

    def server_arguments(self) -> list[str]:
        return ["--port", str(self.port)]

    def prepare(self) -> None:
        ensure_credentials(self.home)

    def answers(self) -> bool:
        return requests.get(f"{self.base_url}/sandbox/health", timeout=2).status_code == 200
