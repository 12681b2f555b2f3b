"""DAG integrity: cs_daily imports cleanly, does no work at import, and is wired as documented."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from csops import settings
from tests.conftest import REPO_ROOT, VENV_BIN

DAG_FILE = REPO_ROOT / "dags" / "cs_daily.py"


@pytest.fixture(scope="module")
def manifest() -> dict:
    """`dbt parse` needs no database; Cosmos renders the dbt tasks from its manifest."""
    project = settings.dbt_project_dir()
    subprocess.run([str(VENV_BIN / "dbt"), "parse", "--project-dir", str(project),
                    "--profiles-dir", str(project), "--quiet"], check=True)
    return json.loads((project / "target" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def dag(manifest):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["cs_daily"]


def test_import_does_no_database_or_network_work(dag, monkeypatch):
    # `dag` parsed the file once, so the libraries it imports are loaded; parsing again runs only the
    # DAG file's own top-level code, which must not connect anywhere or start processes.
    def refuse(*_args, **_kwargs):
        raise AssertionError("cs_daily.py connected to something or started a process at import")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    assert "cs_daily" in bag.dags


def test_schedule_and_defaults(dag):
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("30 6 * * *", "Asia/Tokyo")
    assert dag.catchup is False
    assert dag.doc_md and "cs_daily" in dag.doc_md
    assert dag.default_args["retries"] >= 1


def test_every_dbt_model_is_a_task_after_the_extract(dag, manifest):
    models = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    task_ids = set(dag.task_ids)
    for model in models:
        assert f"dbt.{model}_model_build" in task_ids or any(t.startswith(f"dbt.{model}.") for t in task_ids), model
    extract = dag.get_task("nexpro_extract.load_csv_inbox")
    first_dbt_tasks = [task for task in dag.tasks if task.task_id.startswith("dbt.")
                       and not any(up.startswith("dbt.") for up in task.upstream_task_ids)]
    assert first_dbt_tasks, "the dbt group has entry tasks"
    for task in first_dbt_tasks:
        assert extract.task_id in task.upstream_task_ids
    assert dag.get_task("summarize").upstream_task_ids


def test_relationship_tests_run_after_both_models(dag):
    detached = [task for task in dag.tasks if task.task_id.startswith("dbt.") and "relationships" in task.task_id]
    for task in detached:
        assert len(task.upstream_task_ids) >= 2, task.task_id
