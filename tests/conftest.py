"""Shared fixtures: one real throwaway PostgreSQL for the session, fresh databases per test.

Tests never touch the developer's .local/ state: the server lives in a temporary folder on a free port
and is stopped when the session ends (also after failures and Ctrl-C).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from csops.local_postgres import LocalPostgres, ensure_database
from csops.sandbox.nexpro.generator import build_world
from csops.sandbox.world import WorldParams

pytest_plugins = ["tests.salesforce_fixtures", "tests.channel_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # dbt, airflow and csops live beside the interpreter running the tests
# Airflow reads its home at first import; keep it (and its SQLite DB) out of ~/airflow and .local/.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="csops-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"

# A small world: every persona present, two months of history ending on a fixed date.
TEST_WORLD = WorldParams(accounts=16, days=75, seed=7, end_date=date(2026, 11, 20))


# The longest groups start first under `pytest -n`, so no worker is left with one of them at the end.
LONGEST_FIRST = ("tests/test_end_to_end.py", "tests/ui/test_airflow_ui.py", "built-warehouse",
                 "tests/dbt/test_small_worlds.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items) -> None:
    """Group the tests for `pytest -n N --dist loadgroup` (make test): a module's tests stay on one worker, so
    its module fixtures are set up once, and every test on the built dbt warehouse shares one worker, so that
    warehouse is built once. Without -n the groups change nothing."""
    def group(item) -> str:
        return "built-warehouse" if "built_template" in item.fixturenames else item.nodeid.split("::")[0]

    def rank(item) -> int:
        return next((index for index, name in enumerate(LONGEST_FIRST) if group(item).startswith(name)),
                    len(LONGEST_FIRST))

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=rank)  # stable: collection order within a rank


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> LocalPostgres:
    server = LocalPostgres(tmp_path_factory.mktemp("postgres"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nexpro_template(postgres) -> str:
    """A database holding the test world, copied (as a template) by each test that needs one."""
    ensure_database(postgres.url("postgres"), "nexpro_template")
    build_world(postgres.url("nexpro_template"), TEST_WORLD, progress=lambda _message: None)
    return "nexpro_template"


def create_database(postgres: LocalPostgres, prefix: str, template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as connection:
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        connection.execute(statement)
    return postgres.url(name)


@pytest.fixture
def nexpro_url(postgres, nexpro_template) -> str:
    """A private copy of the test world's Nexpro database."""
    return create_database(postgres, "nexpro", template=nexpro_template)


@pytest.fixture
def warehouse_url(postgres) -> str:
    return create_database(postgres, "warehouse")
