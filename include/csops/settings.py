"""Where things live and which servers to talk to, resolved from environment variables.

Nothing here connects to anything: it only answers questions such as "which Postgres URL is the
warehouse?" so the CLI, the DAG and the tests agree.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO_ROOT = Path(__file__).resolve().parents[2]

# Airflow connection ids used by the DAG; the same names become AIRFLOW_CONN_<ID> variables.
WAREHOUSE_CONN_ID = "cs_warehouse"
NEXPRO_CONN_ID = "nexpro_db"
SALESFORCE_CONN_ID = "salesforce_default"
BOARD_CONN_ID = "board_default"
# The activation channels: Airflow's SMTP provider and the Slack incoming-webhook provider read these.
SMTP_CONN_ID = "smtp_default"
SLACK_CONN_ID = "slack_default"

BUSINESS_TIMEZONE = "Asia/Tokyo"
# Incremental loads re-read rows updated this long before the watermark (a DAG param can change it).
DEFAULT_OVERLAP_MINUTES = 60


def local_dir() -> Path:
    """Git-ignored folder for local state: embedded Postgres, Airflow home, sandbox world, CSV inbox."""
    return Path(os.environ.get("CS_LOCAL_DIR", REPO_ROOT / ".local")).resolve()


def local_postgres_port() -> int:
    return int(os.environ.get("CS_LOCAL_PG_PORT", "54329"))


def configured_url(conn_id: str, url_variable: str) -> str | None:
    """A Postgres URL the user configured, from AIRFLOW_CONN_<ID> first, then the plain variable."""
    return os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}") or os.environ.get(url_variable)


def configured_warehouse_url() -> str | None:
    return configured_url(WAREHOUSE_CONN_ID, "CS_WAREHOUSE_URL")


def configured_nexpro_url() -> str | None:
    return configured_url(NEXPRO_CONN_ID, "CS_NEXPRO_URL")


def configured_salesforce_connection() -> str | None:
    """The Salesforce connection the user configured (a real org), as Airflow reads it from the environment."""
    return os.environ.get(f"AIRFLOW_CONN_{SALESFORCE_CONN_ID.upper()}")


def configured_board_connection() -> str | None:
    """The board API connection the user configured (the real board), as Airflow reads it from the environment."""
    return os.environ.get(f"AIRFLOW_CONN_{BOARD_CONN_ID.upper()}")


def board_sandbox_port() -> int:
    return int(os.environ.get("CS_BOARD_PORT", "54332"))


def configured_smtp_connection() -> str | None:
    """The SMTP server the user configured (a real relay), as Airflow reads it from the environment."""
    return os.environ.get(f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}")


def configured_slack_connection() -> str | None:
    """The Slack incoming webhook the user configured, as Airflow reads it from the environment."""
    return os.environ.get(f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}")


def mail_catcher_port() -> int:
    """The local mail catcher's SMTP port (127.0.0.1)."""
    return int(os.environ.get("CS_MAIL_CATCHER_PORT", "54333"))


def slack_sink_port() -> int:
    """The local Slack sink's HTTP port (127.0.0.1)."""
    return int(os.environ.get("CS_SLACK_SINK_PORT", "54334"))


def mail_dir() -> Path:
    """Where the local mail catcher keeps every message it receives (`.eml` files, messages.jsonl, index.html)."""
    return Path(os.environ.get("CS_MAIL_DIR", local_dir() / "mail")).resolve()


def slack_dir() -> Path:
    """Where the local Slack sink keeps every post it accepts (posts.jsonl, index.html)."""
    return Path(os.environ.get("CS_SLACK_DIR", local_dir() / "slack")).resolve()


def mail_from() -> str | None:
    """The sender of customer e-mails (CS_MAIL_FROM, e.g. `Nexpro カスタマーサクセス <success@nexpro.example>`);
    unset, the SMTP connection's `from_email` extra is used."""
    return os.environ.get("CS_MAIL_FROM") or None


def salesforce_api_reserve() -> float:
    """The share of the org's daily API budget the extract and the write-back leave for other integrations
    (default 20%)."""
    return float(os.environ.get("CS_SALESFORCE_API_RESERVE", "0.2"))


def salesforce_bulk_threshold() -> int:
    """Above this many rows to read, an object is extracted with a Bulk API 2.0 query job instead of REST."""
    return int(os.environ.get("CS_SALESFORCE_BULK_THRESHOLD", "10000"))


def board_reconcile_every() -> timedelta:
    """How old board's last complete read of a resource may get before a run reads every id again to find
    deletes (CS_BOARD_RECONCILE_DAYS, default 7)."""
    return timedelta(days=float(os.environ.get("CS_BOARD_RECONCILE_DAYS", "7")))


def salesforce_write_bulk_threshold() -> int:
    """Above this many records to write to one object, a Bulk API 2.0 ingest job is used instead of sObject
    Collections (200 records per call); at 1,000 both cost about five calls (CS_SALESFORCE_WRITE_BULK_THRESHOLD)."""
    return int(os.environ.get("CS_SALESFORCE_WRITE_BULK_THRESHOLD", "1000"))


def salesforce_sandbox_ports() -> tuple[int, int]:
    """The local Salesforce sandbox's HTTPS port and the port of its proxy for *.salesforce.com."""
    return (int(os.environ.get("CS_SALESFORCE_PORT", "54330")),
            int(os.environ.get("CS_SALESFORCE_PROXY_PORT", "54331")))


def inbox_dir() -> Path:
    """Where CSV usage exports are dropped (the manual path); archive/ and rejected/ sit beside it."""
    return Path(os.environ.get("CS_INBOX_DIR", local_dir() / "inbox")).resolve()


def world_dir() -> Path:
    """Where the sandbox world manifest is written for the Salesforce and board sandboxes to read."""
    return Path(os.environ.get("CS_WORLD_DIR", local_dir() / "world")).resolve()


def dbt_docs_dir() -> Path:
    """Where cs_daily publishes the dbt docs site the Airflow UI serves (CS_DBT_DOCS_DIR; default .local/dbt-docs)."""
    return Path(os.environ.get("CS_DBT_DOCS_DIR", local_dir() / "dbt-docs")).resolve()


def dbt_project_dir() -> Path:
    """The dbt project: CS_DBT_PROJECT_DIR when set (an image installs the package into site-packages, away
    from the project), else the checkout's dbt_project/."""
    return Path(os.environ.get("CS_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project")).resolve()


def business_date(moment) -> str:
    """The Asia/Tokyo calendar date of a timezone-aware datetime, as YYYY-MM-DD."""
    import pendulum

    return pendulum.instance(moment).in_timezone(BUSINESS_TIMEZONE).to_date_string()


def run_date_for(moment) -> str:
    """The business date a run at `moment` computes: the last complete Tokyo day, i.e. the day before.

    The 06:30 Tokyo run's logical date is that same morning; its own date holds only 6½ hours of activity.
    The one rule for "which day": the DAGs, the CLI and the activation call it, and dbt's default run_date
    (dbt_project.yml) mirrors it for a `dbt build` run by hand.
    """
    import pendulum

    return pendulum.instance(moment).in_timezone(BUSINESS_TIMEZONE).subtract(days=1).to_date_string()


def activation_dry_run() -> bool:
    """Whether the activation only records what would fire and sends nothing (CS_ACTIVATION_DRY_RUN, default
    false; the cs_activation DAG's `dry_run` param starts from it)."""
    return os.environ.get("CS_ACTIVATION_DRY_RUN", "false").strip().lower() in ("1", "true", "yes", "on")


def activation_max_firing_share() -> float:
    """The killswitch trips when more than this share of the companies scored on the run date would get a
    playbook at once (CS_ACTIVATION_MAX_FIRING_SHARE, default 0.3)."""
    return float(os.environ.get("CS_ACTIVATION_MAX_FIRING_SHARE", "0.3"))


def activation_ops_email() -> str:
    """Where the killswitch's alert e-mail goes (CS_ACTIVATION_OPS_EMAIL, default the sandbox's ops address)."""
    return os.environ.get("CS_ACTIVATION_OPS_EMAIL", "cs-ops@csops.sandbox")


def activation_language() -> str:
    """The language of the activation's messages, one per message: Slack posts, the digest, the ops alert and
    the customers' e-mails: `ja` (default) or `en` (CS_ACTIVATION_LANGUAGE)."""
    return _checked_language("CS_ACTIVATION_LANGUAGE", os.environ.get("CS_ACTIVATION_LANGUAGE", "ja"))


def dashboards_port() -> int:
    """The port `csops dashboards` serves the Streamlit dashboards on, at 127.0.0.1 (CS_DASHBOARDS_PORT, 8501)."""
    return int(os.environ.get("CS_DASHBOARDS_PORT", "8501"))


def dashboards_host() -> str:
    """The address `csops dashboards` binds (CS_DASHBOARDS_HOST, default 127.0.0.1; 0.0.0.0 in a container)."""
    return os.environ.get("CS_DASHBOARDS_HOST", "127.0.0.1")


def dashboards_dir() -> Path:
    """The Streamlit app (app.py and its views/): CS_DASHBOARDS_DIR when set (an image installs the package away
    from the checkout), else the checkout's dashboards/."""
    return Path(os.environ.get("CS_DASHBOARDS_DIR", REPO_ROOT / "dashboards")).resolve()


def dashboards_url() -> str | None:
    """Where people open the dashboards (CS_DASHBOARDS_URL, e.g. `https://cs.example.com`), for the links in Slack
    posts, the digest and CSM tasks; None (no links) when unset."""
    url = os.environ.get("CS_DASHBOARDS_URL", "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"CS_DASHBOARDS_URL={url!r} is not a web address: set it to the dashboards' http(s) URL "
                         f"as people open it (e.g. https://cs.example.com), or leave it unset for no links.")
    return url or None


def dashboard_link(page: str, **query: str) -> str | None:
    """The URL of a dashboards page (`customer`, company=…) under CS_DASHBOARDS_URL; None when it is unset."""
    base = dashboards_url()
    return f"{base}/{page}" + (f"?{urlencode(query)}" if query else "") if base else None


def dashboards_language() -> str:
    """The dashboards' language: `ja` (default) or `en` (CS_DASHBOARDS_LANGUAGE)."""
    return _checked_language("CS_DASHBOARDS_LANGUAGE", os.environ.get("CS_DASHBOARDS_LANGUAGE", "ja"))


LANGUAGES = ("ja", "en")


def _checked_language(variable: str, value: str) -> str:
    chosen = value.strip().lower() or "ja"
    if chosen not in LANGUAGES:
        raise ValueError(f"{variable}={chosen!r} is not a language the platform speaks: set it to "
                         f"{' or '.join(LANGUAGES)} (Japanese is the default).")
    return chosen
