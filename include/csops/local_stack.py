"""The servers a local run needs: configured ones when given, else the embedded ones.

`local_stack()` resolves the warehouse and Nexpro URLs and the Salesforce, board, SMTP and Slack
connections. What is not configured runs locally: the embedded Postgres (warehouse, Nexpro sandbox, the
Salesforce and board sandboxes' storage), the Salesforce and board sandbox servers, the mail catcher and
the Slack sink. Everything it started is
stopped on the way out — on success, failure or Ctrl-C — but only what this call started (a server kept
up by `make warehouse` stays up).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from csops import settings
from csops.dbt_docs import cosmos_docs_projects
from csops.local_postgres import LocalPostgres
from csops.sandbox.board.server import BoardSandbox
from csops.sandbox.mail.server import MailCatcher
from csops.sandbox.salesforce.server import SalesforceSandbox
from csops.sandbox.slack.server import SlackSink

log = logging.getLogger(__name__)

WAREHOUSE_DATABASE = "warehouse"
NEXPRO_DATABASE = "nexpro"
SALESFORCE_DATABASE = "salesforce"
BOARD_DATABASE = "board"


@dataclass(frozen=True)
class Stack:
    warehouse_url: str
    nexpro_url: str
    server: LocalPostgres | None
    salesforce_connection: str  # Airflow connection (JSON) of the org: the sandbox's, the configured one, or ""
    salesforce_sandbox: SalesforceSandbox | None = None
    board_connection: str = ""  # Airflow connection (JSON) of the board API: the sandbox's or the configured one
    board_sandbox: BoardSandbox | None = None
    smtp_connection: str = ""  # Airflow connection (JSON) of the SMTP server: the mail catcher's or the configured one
    mail_catcher: MailCatcher | None = None
    slack_connection: str = ""  # Airflow connection (JSON) of the Slack webhook: the sink's or the configured one
    slack_sink: SlackSink | None = None

    def airflow_connections(self) -> dict[str, str]:
        connections = {f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}": self.warehouse_url,
                       f"AIRFLOW_CONN_{settings.NEXPRO_CONN_ID.upper()}": self.nexpro_url}
        if self.salesforce_connection:
            connections[f"AIRFLOW_CONN_{settings.SALESFORCE_CONN_ID.upper()}"] = self.salesforce_connection
        if self.board_connection:
            connections[f"AIRFLOW_CONN_{settings.BOARD_CONN_ID.upper()}"] = self.board_connection
        if self.smtp_connection:
            connections[f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}"] = self.smtp_connection
        if self.slack_connection:
            connections[f"AIRFLOW_CONN_{settings.SLACK_CONN_ID.upper()}"] = self.slack_connection
        if self.salesforce_sandbox is not None:
            # The sandbox's certificate is signed by a local CA; this bundle holds it beside the usual ones.
            connections["REQUESTS_CA_BUNDLE"] = str(self.salesforce_sandbox.ca_bundle())
        return connections


def local_server() -> LocalPostgres:
    return LocalPostgres(settings.local_dir() / "postgres", settings.local_postgres_port())


def board_sandbox(server: LocalPostgres) -> BoardSandbox:
    return BoardSandbox(settings.local_dir() / "board", server.url(BOARD_DATABASE), settings.board_sandbox_port())


def salesforce_sandbox(server: LocalPostgres) -> SalesforceSandbox:
    port, proxy_port = settings.salesforce_sandbox_ports()
    return SalesforceSandbox(settings.local_dir() / "salesforce", server.url(SALESFORCE_DATABASE), port, proxy_port)


def mail_catcher() -> MailCatcher:
    return MailCatcher(settings.mail_dir(), port=settings.mail_catcher_port())


def slack_sink() -> SlackSink:
    return SlackSink(settings.slack_dir(), port=settings.slack_sink_port())


@contextmanager
def local_stack(*, salesforce: bool = True, board: bool = True, channels: bool = True) -> Iterator[Stack]:
    """The stack; `salesforce=False` / `board=False` / `channels=False` leave those sandboxes out (for commands
    that do not need them); `channels` are the mail catcher and the Slack sink."""
    warehouse_url = settings.configured_warehouse_url()
    nexpro_url = settings.configured_nexpro_url()
    salesforce_connection = settings.configured_salesforce_connection() or ""
    run_sandbox = salesforce and not salesforce_connection
    board_connection = settings.configured_board_connection() or ""
    run_board = board and not board_connection
    server, started = None, False
    sandbox, sandbox_started = None, False
    billing, billing_started = None, False
    smtp_connection = settings.configured_smtp_connection() or ""
    slack_connection = settings.configured_slack_connection() or ""
    catcher, catcher_started = None, False
    sink, sink_started = None, False
    if not (warehouse_url and nexpro_url) or run_sandbox or run_board:
        server = local_server()
        started = server.start()
    try:
        if server is not None:
            if not warehouse_url:
                server.ensure_database(WAREHOUSE_DATABASE)
                warehouse_url = server.url(WAREHOUSE_DATABASE)
            if not nexpro_url:
                server.ensure_database(NEXPRO_DATABASE)
                nexpro_url = server.url(NEXPRO_DATABASE)
            if run_sandbox:
                server.ensure_database(SALESFORCE_DATABASE)
                sandbox = salesforce_sandbox(server)
                sandbox_started = sandbox.start()
                salesforce_connection = json.dumps(sandbox.airflow_connection())
            if run_board:
                server.ensure_database(BOARD_DATABASE)
                billing = board_sandbox(server)
                billing_started = billing.start()
                board_connection = json.dumps(billing.airflow_connection())
        if channels and not smtp_connection:
            catcher = mail_catcher()
            catcher_started = catcher.start()
            smtp_connection = json.dumps(catcher.airflow_connection())
        if channels and not slack_connection:
            sink = slack_sink()
            sink_started = sink.start()
            slack_connection = json.dumps(sink.airflow_connection())
        yield Stack(warehouse_url, nexpro_url, server, salesforce_connection, sandbox, board_connection, billing,
                    smtp_connection, catcher, slack_connection, sink)
    finally:
        if sink_started:
            sink.stop()
        if catcher_started:
            catcher.stop()
        if billing_started:
            billing.stop()
        if sandbox_started:
            sandbox.stop()
        if started:
            server.stop()


def dbt_environment(warehouse_url: str) -> dict[str, str]:
    """The CS_WAREHOUSE_* variables dbt_project/profiles.yml reads, taken from a Postgres URL."""
    parts = urlsplit(warehouse_url)
    return {
        "CS_WAREHOUSE_HOST": parts.hostname or "127.0.0.1",
        "CS_WAREHOUSE_PORT": str(parts.port or 5432),
        "CS_WAREHOUSE_USER": unquote(parts.username or "postgres"),
        "CS_WAREHOUSE_PASSWORD": unquote(parts.password or ""),
        "CS_WAREHOUSE_DBNAME": parts.path.lstrip("/") or WAREHOUSE_DATABASE,
    }


def airflow_environment(stack: Stack, **extra: str) -> dict[str, str]:
    """Environment for Airflow commands: local SQLite metadata, this repo's DAGs, the stack's connections."""
    home = settings.local_dir() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Cosmos phones home with usage metrics unless told not to; this machine may have no internet.
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # The dbt docs site cs_daily publishes, served by the UI ("dbt Docs" in its menu).
        "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": cosmos_docs_projects(),
        **stack.airflow_connections(),
        **dbt_environment(stack.warehouse_url),
        **extra,
    })
    return environment
