"""DAG integrity: cs_daily imports cleanly, does no work at import, and is wired as documented."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from types import SimpleNamespace

import pendulum
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


RUN_DATE = "{{ run_date_for(dag_run.logical_date or dag_run.run_after) }}"


@pytest.fixture(scope="module")
def dag(manifest):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["cs_daily"]


def test_import_does_no_database_or_network_work(dag, monkeypatch):
    # `dag` parsed the file once, so the libraries it imports are loaded; parsing again runs only the
    # DAG file's own top-level code. Its connections point at a real listening socket: any connection
    # attempt at import (libpq's included, which no Python-level patch would see) shows up there.
    def refuse(*_args, **_kwargs):
        raise AssertionError("cs_daily.py started a process at import")

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        url = f"postgresql://spy:secret@127.0.0.1:{listener.getsockname()[1]}/db?connect_timeout=1"
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}", url)
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.NEXPRO_CONN_ID.upper()}", url)
        monkeypatch.setattr(subprocess, "Popen", refuse)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAG_FILE))
        assert bag.import_errors == {}
        assert "cs_daily" in bag.dags
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_the_spy_listener_does_see_a_libpq_connection():
    """The check above can fail: a libpq connection attempt does reach such a listener."""
    import psycopg

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        port = listener.getsockname()[1]
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"postgresql://spy:secret@127.0.0.1:{port}/db?connect_timeout=1")
        connection, _address = listener.accept()
        connection.close()


def test_the_run_computes_the_previous_tokyo_day(dag):
    """The 06:30 Tokyo run's logical date is that morning; it must compute the day before, complete."""
    template = dag.get_template_env().from_string(RUN_DATE)

    def render(logical_date, run_after=None):
        return template.render(dag_run=SimpleNamespace(logical_date=logical_date, run_after=run_after))

    morning_run = pendulum.datetime(2026, 11, 21, 6, 30, tz="Asia/Tokyo")  # 2026-11-20T21:30Z
    assert render(morning_run) == "2026-11-20"
    just_after_midnight = pendulum.datetime(2026, 11, 20, 15, 5, tz="UTC")  # 00:05 on the 21st in Tokyo
    assert render(just_after_midnight) == "2026-11-20"
    assert render(None, run_after=morning_run) == "2026-11-20", "a run triggered with no logical date"
    dbt_task = next(task for task in dag.tasks if task.task_id.startswith("dbt."))
    assert dbt_task.vars == {"run_date": RUN_DATE}


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


def test_relationship_tests_run_after_both_models(dag):
    detached = [task for task in dag.tasks if task.task_id.startswith("dbt.") and "relationships" in task.task_id]
    for task in detached:
        assert len(task.upstream_task_ids) >= 2, task.task_id


def test_summarize_and_freshness_run_whatever_happened_upstream(dag):
    summarize = dag.get_task("summarize")
    freshness = dag.get_task("source_freshness")
    assert freshness.trigger_rule == "all_done"
    assert summarize.is_teardown and summarize.trigger_rule == "all_done_setup_success", \
        "runs whatever happened upstream, and a failed load still fails the run"
    dbt_leaves = {task.task_id for task in dag.tasks if task.task_id.startswith("dbt.")
                  and not any(down.startswith("dbt.") for down in task.downstream_task_ids)}
    assert dbt_leaves and summarize.upstream_task_ids == dbt_leaves | {"source_freshness"}
    assert freshness.upstream_task_ids == {"nexpro_extract.load_csv_inbox", "salesforce_extract.load_object",
                                           "board_extract.load_resource"}


def test_full_refresh_and_overlap_are_params(dag):
    params = dag.params
    assert params["full_refresh"] == [] and params["overlap_minutes"] == settings.DEFAULT_OVERLAP_MINUTES
    assert "all" in params.get_param("full_refresh").schema["items"]["enum"]


def test_each_mart_task_publishes_its_registered_asset(dag, manifest):
    from csops_airflow.assets import mart_asset

    marts = [node["name"] for node in manifest["nodes"].values()
             if node["resource_type"] == "model" and node["fqn"][1] == "marts"]
    assert marts
    for mart in marts:
        task = dag.get_task(f"dbt.{mart}_model_build")
        assert task.outlets == [mart_asset(mart)], "declared at parse time, so Airflow registers the Asset"
    assert not any(getattr(task, "emit_datasets", False) for task in dag.tasks if task.task_id.startswith("dbt.")), \
        "Cosmos's own per-model Assets (named after the warehouse host) are off"


def bare_airflow_environment(home) -> dict[str, str]:
    """Airflow's defaults but for where the DAGs are: no plugins folder, no PYTHONPATH, a new home."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("AIRFLOW", "PYTHONPATH", "CS_"))}
    environment.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
                       AIRFLOW__CORE__LOAD_EXAMPLES="False")
    return environment


LIST_DAGS = ("from airflow.dag_processing.dagbag import DagBag; bag = DagBag(); "
             "print(sorted(bag.dags), list(bag.import_errors.values()))")


def test_a_bare_airflow_home_loads_the_dags(manifest, tmp_path):
    completed = subprocess.run([str(VENV_BIN / "python"), "-c", LIST_DAGS], cwd=tmp_path, capture_output=True,
                               text=True, env=bare_airflow_environment(tmp_path / "airflow-home"), timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "['cs_daily'] []"


def test_a_missing_manifest_is_named_with_the_fix(manifest, tmp_path):
    moved = settings.dbt_project_dir() / "target" / "manifest.json.moved"
    (settings.dbt_project_dir() / "target" / "manifest.json").rename(moved)
    try:
        completed = subprocess.run([str(VENV_BIN / "python"), "-c", LIST_DAGS], cwd=tmp_path, capture_output=True,
                                   text=True, env=bare_airflow_environment(tmp_path / "airflow-home"), timeout=300)
    finally:
        moved.rename(settings.dbt_project_dir() / "target" / "manifest.json")
    assert "manifest.json is missing" in completed.stdout and "make manifest" in completed.stdout
