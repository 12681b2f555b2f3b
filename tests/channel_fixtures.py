"""Fixtures that start the mail catcher and the Slack sink for tests (loaded by tests/conftest.py as a plugin).

Each runs once for the session in a temporary home on a free port. `smtp_connection` / `slack_connection`
point Airflow's `smtp_default` / `slack_default` at them for one test (AIRFLOW_CONN_* variables, as the
local stack sets them), so the providers' real hooks talk to the real servers.
"""

from __future__ import annotations

import json

import pytest

from csops import settings
from csops.sandbox.mail.server import MailCatcher
from csops.sandbox.slack.server import SlackSink


@pytest.fixture(scope="session")
def mail_catcher(tmp_path_factory) -> MailCatcher:
    from tests.conftest import free_port

    catcher = MailCatcher(tmp_path_factory.mktemp("mail"), port=free_port())
    catcher.start()
    yield catcher
    catcher.stop()


@pytest.fixture(scope="session")
def slack_sink(tmp_path_factory) -> SlackSink:
    from tests.conftest import free_port

    sink = SlackSink(tmp_path_factory.mktemp("slack"), port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_connection(mail_catcher, monkeypatch) -> dict:
    connection = mail_catcher.airflow_connection()
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}", json.dumps(connection))
    return connection


@pytest.fixture
def slack_connection(slack_sink, monkeypatch) -> dict:
    connection = slack_sink.airflow_connection()
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.SLACK_CONN_ID.upper()}", json.dumps(connection))
    return connection
