"""Helpers for the dbt tests: run dbt against a warehouse, and load one with the test world's three sources
through the real loaders (Salesforce over HTTPS with simple-salesforce, board over its HTTP API)."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path

import pytest

from csops import settings
from csops.extract.board import BOARD_RESOURCES, BoardClient, load_resource
from csops.extract.engine import load_table
from csops.extract.nexpro_tables import NEXPRO_TABLES, RAW_SCHEMA, SOURCE_NAME
from csops.extract.salesforce import CountingSession, SalesforceApi, connect_with_hook, load_object
from csops.extract.salesforce_objects import SALESFORCE_OBJECTS
from csops.local_stack import dbt_environment
from tests.conftest import TEST_WORLD, VENV_BIN

RUN_DATE = TEST_WORLD.end_date


def dbt(warehouse: str, target: Path, *arguments: str, run_date: date = RUN_DATE, run_id: str = "dbt-test",
        variables: dict | None = None):
    """`dbt <arguments>` on `warehouse` as of `run_date` (and any other `variables`), writing its artifacts to
    `target`."""
    project = settings.dbt_project_dir()
    return subprocess.run(
        [str(VENV_BIN / "dbt"), *arguments, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--vars", json.dumps({"run_date": run_date.isoformat(), **(variables or {})})],
        env={**dbt_environment(warehouse), "PATH": "/usr/bin:/bin", "CS_AIRFLOW_RUN_ID": run_id},
        capture_output=True, text=True)


def load_nexpro(nexpro: str, warehouse: str) -> None:
    for table in NEXPRO_TABLES:
        load_table(nexpro, warehouse, table, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA, run_id="dbt-test")


def load_salesforce(org, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extract every object of `org` through the Airflow connection, as the DAG does."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(org.airflow_connection()))
    api = SalesforceApi(connect_with_hook("salesforce_default"), CountingSession(reserve_share=0.2))
    for object_name in SALESFORCE_OBJECTS:
        load_object(api, warehouse, object_name, run_id="dbt-test")


def load_board(board, warehouse: str) -> None:
    """Extract every board resource over the sandbox's API (per-second limit off: these tests are about dbt)."""
    board.admin.set_per_second_limit(False)
    values = board.credentials()
    client = BoardClient(board.base_url, values["api_key"], values["token"], requests_per_second=100)
    for resource in BOARD_RESOURCES:
        assert load_resource(client, warehouse, resource, run_id="dbt-test").status == "succeeded", resource
