"""The mail catcher: real SMTP in, every message kept as an .eml file with a readable index."""

from __future__ import annotations

import json
import smtplib
import socket
from email.message import EmailMessage

import pytest

from csops.sandbox.mail.server import MailCatcher

SUBJECT = "【ネクプロ】ご契約更新のご案内"
BODY = "株式会社テスト\nご担当者様\n\nいつもネクプロをご利用いただきありがとうございます。\n"


def japanese_message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = "ネクプロ カスタマーサクセス <success@nexpro.example>"
    message["To"] = to
    message.set_content(BODY, charset="utf-8")
    return message


def test_speaks_smtp_with_auth_offered_and_keeps_each_message(mail_catcher: MailCatcher):
    before = len(mail_catcher.mailbox.entries())
    credentials = mail_catcher.airflow_connection()
    with smtplib.SMTP("127.0.0.1", mail_catcher.port, timeout=5) as client:
        code, features = client.ehlo()
        assert code == 250
        assert b"AUTH" in features and b"PLAIN" in features and b"SMTPUTF8" in features
        client.login(credentials["login"], credentials["password"])
        refused = client.send_message(japanese_message("yamada@customer.example"))
    assert refused == {}
    entries = mail_catcher.mailbox.entries()
    assert len(entries) == before + 1
    entry = entries[-1]
    assert entry["subject"] == SUBJECT  # decoded from its RFC 2047 form
    assert entry["rcpt_tos"] == ["yamada@customer.example"]
    assert entry["mail_from"] == "success@nexpro.example"
    raw = (mail_catcher.home / entry["file"]).read_bytes()
    # The .eml is the message as sent: RFC 2047-encoded headers, the UTF-8 body byte for byte (8BITMIME).
    assert b"Subject: =?utf-8?" in raw and BODY.replace("\n", "\r\n").encode() in raw
    message = mail_catcher.mailbox.message(entry)
    assert message["Subject"] == SUBJECT and message.get_content().replace("\r\n", "\n") == BODY
    index = (mail_catcher.home / "index.html").read_text(encoding="utf-8")
    assert SUBJECT in index and entry["file"] in index
    last_line = (mail_catcher.home / "messages.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last_line) == entry and SUBJECT in last_line  # readable, not \u-escaped


def test_sending_without_logging_in_is_accepted(mail_catcher: MailCatcher):
    before = len(mail_catcher.mailbox.entries())
    with smtplib.SMTP("127.0.0.1", mail_catcher.port, timeout=5) as client:
        client.send_message(japanese_message("anonymous@customer.example"))
    assert len(mail_catcher.mailbox.entries()) == before + 1


def test_a_wrong_password_is_refused(mail_catcher: MailCatcher):
    with smtplib.SMTP("127.0.0.1", mail_catcher.port, timeout=5) as client, \
            pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login("csops", "not-the-password")
    assert refused.value.smtp_code == 535


def test_a_recipient_in_a_nonexistent_domain_is_refused_and_nothing_kept(mail_catcher: MailCatcher):
    before = len(mail_catcher.mailbox.entries())
    with smtplib.SMTP("127.0.0.1", mail_catcher.port, timeout=5) as client, \
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(japanese_message("someone@bounce.invalid"))
    code, answer = refused.value.recipients["someone@bounce.invalid"]
    assert code == 550 and b"someone@bounce.invalid" in answer
    assert len(mail_catcher.mailbox.entries()) == before


def test_runs_as_a_sandbox_process_started_once_and_stopped(tmp_path):
    from tests.conftest import free_port

    catcher = MailCatcher(tmp_path / "mail", port=free_port())
    assert catcher.start() is True
    try:
        assert catcher.is_running() and catcher.answers()
        assert catcher.start() is False  # already up: left alone
        assert (tmp_path / "mail" / "credentials.json").stat().st_mode & 0o777 == 0o600
    finally:
        catcher.stop()
    assert not catcher.is_running()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", catcher.port)) != 0, "the port is still served"
