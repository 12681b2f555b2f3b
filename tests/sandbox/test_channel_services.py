"""The local stack starts the mail catcher and the Slack sink beside the other sandboxes, hands Airflow their
connections, and stops them on the way out; a configured SMTP server or Slack webhook replaces them."""

from __future__ import annotations

import json

from csops import settings
from csops.local_stack import local_stack
from tests.conftest import free_port


def stack_environment(monkeypatch, tmp_path, warehouse_url) -> None:
    """Configured databases (so no embedded Postgres) and free ports for the two services."""
    for name in ("AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_SLACK_DEFAULT", "CS_MAIL_DIR", "CS_SLACK_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CS_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("CS_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CS_NEXPRO_URL", warehouse_url)
    monkeypatch.setenv("CS_MAIL_CATCHER_PORT", str(free_port()))
    monkeypatch.setenv("CS_SLACK_SINK_PORT", str(free_port()))


def test_the_stack_runs_both_services_and_stops_them(monkeypatch, tmp_path, warehouse_url):
    stack_environment(monkeypatch, tmp_path, warehouse_url)
    with local_stack(salesforce=False, board=False) as stack:
        assert stack.server is None
        catcher, sink = stack.mail_catcher, stack.slack_sink
        assert catcher.is_running() and sink.is_running()
        assert catcher.home == settings.mail_dir() == tmp_path / "local" / "mail"
        assert sink.home == settings.slack_dir() == tmp_path / "local" / "slack"
        connections = stack.airflow_connections()
        smtp = json.loads(connections["AIRFLOW_CONN_SMTP_DEFAULT"])
        slack = json.loads(connections["AIRFLOW_CONN_SLACK_DEFAULT"])
        assert (smtp["conn_type"], smtp["port"]) == ("smtp", settings.mail_catcher_port())
        assert smtp["extra"]["disable_ssl"] is True and smtp["extra"]["disable_tls"] is True
        assert slack["conn_type"] == "slackwebhook"
        assert slack["host"] == f"http://127.0.0.1:{settings.slack_sink_port()}/services"
    assert not catcher.is_running() and not sink.is_running()


def test_configured_channels_replace_the_local_services(monkeypatch, tmp_path, warehouse_url):
    stack_environment(monkeypatch, tmp_path, warehouse_url)
    smtp = json.dumps({"conn_type": "smtp", "host": "smtp.example.com", "port": 587, "login": "cs",
                       "password": "secret", "extra": {"from_email": "cs@example.com"}})
    slack = json.dumps({"conn_type": "slackwebhook", "password": "T1/B1/secret"})
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", slack)
    with local_stack(salesforce=False, board=False) as stack:
        assert stack.mail_catcher is None and stack.slack_sink is None
        connections = stack.airflow_connections()
        assert connections["AIRFLOW_CONN_SMTP_DEFAULT"] == smtp and connections["AIRFLOW_CONN_SLACK_DEFAULT"] == slack
    assert not (tmp_path / "local" / "mail").exists()


def test_commands_that_need_no_channels_leave_them_out(monkeypatch, tmp_path, warehouse_url):
    stack_environment(monkeypatch, tmp_path, warehouse_url)
    with local_stack(salesforce=False, board=False, channels=False) as stack:
        assert stack.mail_catcher is None and stack.slack_sink is None
        assert not any(name in stack.airflow_connections()
                       for name in ("AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_SLACK_DEFAULT"))
