"""Run the mail catcher as a background process, and reach it as a client.

Its home folder (settings.mail_dir(), `.local/mail` by default) holds the mailbox — `messages/*.eml`,
`messages.jsonl`, `index.html` — beside `credentials.json` (mode 0600: the SMTP login and password),
the pid file and the log. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import secrets
import smtplib
from dataclasses import dataclass, field
from pathlib import Path

from csops.sandbox.mail.catcher import Mailbox
from csops.sandbox.process import SandboxProcess

SMTP_LOGIN = "csops"
# Who customer e-mails come from on the local stack (the connection's `from_email`).
LOCAL_FROM_EMAIL = "Nexpro Customer Success <success@nexpro.example>"


def ensure_credentials(home: Path) -> dict:
    """The SMTP login and a password generated on first use."""
    path = home / "credentials.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"login": SMTP_LOGIN, "password": secrets.token_urlsafe(24)}, handle, indent=2)
    return json.loads(path.read_text())


@dataclass
class MailCatcher(SandboxProcess):
    port: int = 0
    database_url: str = field(default="")

    label = "mail catcher"
    module = "csops.sandbox.mail"

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self.home)

    def airflow_connection(self) -> dict:
        """The Airflow connection (AIRFLOW_CONN_SMTP_DEFAULT as JSON) the SMTP provider's hook reads: plain
        SMTP on 127.0.0.1 (the provider's `disable_ssl` / `disable_tls`), logging in with the catcher's login.
        `retry_limit` 0: the hook retries any error at once, even a refused recipient; the channels module
        retries transient errors itself, with a pause."""
        values = ensure_credentials(self.home)
        return {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "login": values["login"],
                "password": values["password"],
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": LOCAL_FROM_EMAIL,
                          "retry_limit": 0, "timeout": 10}}

    def server_arguments(self) -> list[str]:
        return ["--port", str(self.port)]

    def prepare(self) -> None:
        ensure_credentials(self.home)

    def answers(self) -> bool:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as client:
            return client.noop()[0] == 250
