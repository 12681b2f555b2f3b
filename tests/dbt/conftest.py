"""One warehouse per session, loaded from the test world's three sources and built by `dbt build`; every test
module gets its own copy of it (a Postgres template clone, a second or so), so a module may change its copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csops.sandbox.salesforce.seed import seed_org
from tests.board_fixtures import running_board
from tests.conftest import TEST_WORLD, create_database
from tests.dbt.warehouse import dbt, load_board, load_nexpro, load_salesforce
from tests.salesforce_fixtures import sandbox_beside


@pytest.fixture(scope="session")
def board(postgres, tmp_path_factory):
    with running_board(postgres, tmp_path_factory.mktemp("board"), "board_dbt") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def built_template(postgres, nexpro_template, salesforce_sandbox, board, tmp_path_factory):
    """The test world loaded and built once: (database name, dbt's process, its run results)."""
    nexpro = create_database(postgres, "nexpro_dbt", template=nexpro_template)
    warehouse = create_database(postgres, "warehouse_dbt")
    load_nexpro(nexpro, warehouse)
    load_board(board, warehouse)
    # An org of its own: other tests change the session's org.
    with pytest.MonkeyPatch.context() as patch, sandbox_beside(
            salesforce_sandbox, create_database(postgres, "salesforce_dbt"), tmp_path_factory.mktemp("org")) as org:
        seed_org(org.database_url, TEST_WORLD, progress=lambda _message: None)
        load_salesforce(org, warehouse, patch)
    target = tmp_path_factory.mktemp("dbt-build")
    completed = dbt(warehouse, target, "build")
    results = json.loads((target / "run_results.json").read_text())["results"] if completed.returncode == 0 else None
    return warehouse.rsplit("/", 1)[1], completed, results


@pytest.fixture(scope="module")
def built_warehouse(postgres, built_template):
    """A copy of the built warehouse for this module: (its URL, dbt's process, its run results)."""
    name, completed, results = built_template
    return create_database(postgres, "warehouse_built", template=name), completed, results


@pytest.fixture(scope="module")
def dbt_target(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt-target")
