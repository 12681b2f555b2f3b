"""The mail catcher's SMTP side: aiosmtpd with a handler that files each message in the mailbox folder.

It speaks real SMTP (EHLO, SIZE, 8BITMIME, SMTPUTF8, AUTH PLAIN/LOGIN without TLS, which is fine on
127.0.0.1). AUTH is offered, not required; a client that logs in must use the login and password in the
catcher's `credentials.json`, as a real relay would check them. Like a real server it refuses recipients
in the reserved `.invalid` domain (550 5.1.1), which is how tests see a permanent delivery error.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger(__name__)
INDEX_ROWS = 500  # index.html lists the newest messages; messages.jsonl keeps them all


class Mailbox:
    """The folder of received messages: `messages/<time>-<n>.eml`, `messages.jsonl` and `index.html`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.messages_dir = folder / "messages"
        self.index_jsonl = folder / "messages.jsonl"
        self.index_html = folder / "index.html"
        self._lock = threading.Lock()

    def entries(self) -> list[dict]:
        """Every message received, oldest first: time, envelope sender and recipients, From, To, Subject, file."""
        if not self.index_jsonl.exists():
            return []
        return [json.loads(line) for line in self.index_jsonl.read_text(encoding="utf-8").splitlines() if line]

    def message(self, entry: dict) -> email.message.EmailMessage:
        """A received message parsed (headers decoded, so a Japanese subject reads as Japanese)."""
        return email.message_from_bytes((self.folder / entry["file"]).read_bytes(), policy=email.policy.default)

    def store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> dict:
        received = datetime.now(UTC)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        with self._lock:
            self.messages_dir.mkdir(parents=True, exist_ok=True)
            sequence = len(self.entries()) + 1
            name = f"messages/{received:%Y%m%dT%H%M%S}-{sequence:06d}.eml"
            (self.folder / name).write_bytes(content)
            entry = {"received_at": received.isoformat(timespec="seconds"), "mail_from": mail_from,
                     "rcpt_tos": rcpt_tos, "from": str(parsed.get("From", "")), "to": str(parsed.get("To", "")),
                     "subject": str(parsed.get("Subject", "")), "file": name}
            with open(self.index_jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._write_html()
        return entry

    def _write_html(self) -> None:
        rows = "\n".join(
            f"<tr><td>{html.escape(entry['received_at'])}</td><td>{html.escape(entry['from'])}</td>"
            f"<td>{html.escape(', '.join(entry['rcpt_tos']))}</td>"
            f"<td><a href=\"{html.escape(entry['file'])}\">"
            f"{html.escape(entry['subject']) or '(no subject)'}</a></td></tr>"
            for entry in reversed(self.entries()[-INDEX_ROWS:]))
        self.index_html.write_text(
            "<!doctype html><meta charset=\"utf-8\"><title>Mail catcher</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left;vertical-align:top}</style>"
            "<h1>Mail caught by the local SMTP server</h1><p>Newest first; every message is an .eml file in "
            "messages/ (open it with a mail client), all of them listed in messages.jsonl.</p>"
            f"<table><tr><th>Received (UTC)</th><th>From</th><th>To</th><th>Subject</th></tr>\n{rows}</table>\n",
            encoding="utf-8")


class CatcherHandler:
    """aiosmtpd's hooks: check each recipient, file each message."""

    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address.lower().rstrip(">").endswith(".invalid"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: domain does not exist"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        entry = self.mailbox.store(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        log.info("caught %s from %s to %s", entry["file"], envelope.mail_from, ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 OK: queued as " + Path(entry["file"]).stem


class Authenticator:
    """AUTH PLAIN / LOGIN against the catcher's one login."""

    def __init__(self, login: str, password: str):
        self.login, self.password = login.encode(), password.encode()

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: object) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.login, self.password)
        if not ok:
            log.info("refused AUTH %s", mechanism)
        return AuthResult(success=ok, handled=False)
