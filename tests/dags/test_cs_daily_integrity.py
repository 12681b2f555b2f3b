"""DAG integrity: cs_daily imports cleanly, does no work at import, and is wired as documented."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import timedelta
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
PRODUCER = "dbt.dbt_producer_watcher"


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
    assert dag.get_task(PRODUCER).vars == {"run_date": RUN_DATE}


def test_schedule_and_defaults(dag):
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("30 6 * * *", "Asia/Tokyo")
    assert dag.catchup is False
    assert dag.doc_md and "cs_daily" in dag.doc_md
    assert dag.default_args["retries"] >= 1


def ancestors(dag, task_id: str) -> set[str]:
    found, todo = set(), [task_id]
    while todo:
        for upstream in dag.get_task(todo.pop()).upstream_task_ids - found:
            found.add(upstream)
            todo.append(upstream)
    return found


def model_task_ids(task_ids, name: str) -> list[str]:
    """A model's (or seed's) tasks: `dbt.<name>_run`, or `dbt.<name>.run` then `dbt.<name>.test` when it has tests."""
    return [task_id for task_id in (f"dbt.{name}_run", f"dbt.{name}_seed", f"dbt.{name}.run", f"dbt.{name}.seed",
                                    f"dbt.{name}.test") if task_id in task_ids]


def test_one_dbt_build_after_the_extract_then_a_task_per_model(dag, manifest):
    producer = dag.get_task(PRODUCER)
    assert type(producer).__name__ == "DbtProducerWatcherOperator" and producer.base_cmd == ["build"]
    assert producer.full_refresh == "{{ params.rebuild_marts }}", "rebuild_marts is the build's --full-refresh"
    assert producer.exclude == "resource_type:operation" and not producer.select, "the whole project, in one build"
    assert producer.upstream_task_ids == {"nexpro_extract.load_csv_inbox", "salesforce_extract.load_object",
                                          "board_extract.load_resource"}
    task_ids = set(dag.task_ids)
    nodes = [node for node in manifest["nodes"].values() if node["resource_type"] in ("model", "seed")]
    assert nodes
    for node in nodes:
        tasks = model_task_ids(task_ids, node["name"])
        assert tasks, f"{node['name']} has a task"
        for task_id in tasks:
            task = dag.get_task(task_id)
            assert type(task).__name__.endswith("WatcherOperator"), "it reports the build's result, runs no dbt"
            assert PRODUCER in ancestors(dag, task_id), \
                f"{task_id} starts after the build: `airflow dags test` runs one task at a time"
    first = [task for task in dag.tasks if task.task_id.startswith("dbt.") and PRODUCER in task.upstream_task_ids]
    assert first and all(task.trigger_rule == "none_failed" for task in first), \
        "they read the results of a build that failed (handed over on its retry), not of one that never ran"


def test_the_build_hands_its_results_over_on_its_retry_and_never_builds_twice(dag):
    producer = dag.get_task(PRODUCER)
    assert producer.retries == 1 and producer.retry_delay == timedelta(0)
    model_run = next(task for task in dag.tasks if task.task_id.endswith(".run"))
    assert model_run.retries == dag.default_args["retries"], "a failed model's task retries that model alone"


def test_the_run_fails_on_any_failed_dbt_node_once_the_model_tasks_are_done(dag):
    gate = dag.get_task("dbt.nodes_passed")
    dbt_tasks = {task.task_id for task in dag.tasks if task.task_id.startswith("dbt.")} - {gate.task_id}
    assert ancestors(dag, gate.task_id) >= dbt_tasks, "after every dbt task"
    assert gate.trigger_rule == "none_failed" and gate.retries == 0
    assert not gate.is_teardown, "its failure fails the run"
    assert dag.get_task("summarize").upstream_task_ids == {gate.task_id, "source_freshness", "dbt_docs"}, \
        "the last task the run's state depends on: after a failed load it is upstream_failed, so the run fails"


def test_the_docs_site_is_generated_after_the_build_whatever_its_outcome(dag):
    docs = dag.get_task("dbt_docs")
    assert docs.upstream_task_ids == {PRODUCER} and docs.trigger_rule == "all_done"
    assert docs.downstream_task_ids == {"summarize"}, "a leaf beside nodes_passed: its success hides no failure"


def test_tests_run_in_the_build_and_a_models_tests_hold_back_what_uses_it(dag, manifest):
    producer = dag.get_task(PRODUCER)
    assert "--resource-type" not in (producer.dbt_cmd_flags or []), "dbt build runs the tests too"
    tests = [node for node in manifest["nodes"].values() if node["resource_type"] == "test"]
    relationships = [test for test in tests if len(test["depends_on"]["nodes"]) > 1]
    assert relationships
    for test in relationships:
        for parent in test["depends_on"]["nodes"]:
            assert test["unique_id"] in producer.tests_per_model[parent], \
                "a relationships test counts for both of its models' test tasks"
    task_ids = set(dag.task_ids)
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        for parent in node["depends_on"]["nodes"]:
            parent_name = parent.split(".")[-1]
            if f"dbt.{parent_name}.test" in task_ids:
                assert f"dbt.{parent_name}.test" in ancestors(dag, model_task_ids(task_ids, node["name"])[0]), \
                    f"{node['name']} waits for the tests of {parent_name}"


def test_summarize_and_freshness_run_whatever_happened_upstream(dag):
    summarize = dag.get_task("summarize")
    freshness = dag.get_task("source_freshness")
    assert freshness.trigger_rule == "all_done"
    assert summarize.is_teardown and summarize.trigger_rule == "all_done_setup_success", \
        "runs whatever happened upstream, and a failed load still fails the run"
    dbt_leaves = {task.task_id for task in dag.tasks if task.task_id.startswith("dbt.")
                  and not any(down.startswith("dbt.") for down in task.downstream_task_ids)}
    assert dbt_leaves and summarize.upstream_task_ids == dbt_leaves | {"source_freshness", "dbt_docs"}
    assert freshness.upstream_task_ids == {"nexpro_extract.load_csv_inbox", "salesforce_extract.load_object",
                                           "board_extract.load_resource"}


def test_full_refresh_and_overlap_are_params(dag):
    params = dag.params
    assert params["full_refresh"] == [] and params["overlap_minutes"] == settings.DEFAULT_OVERLAP_MINUTES
    assert "all" in params.get_param("full_refresh").schema["items"]["enum"]
    assert params["reconcile_board"] is False, "board's ids are reconciled on their weekly schedule unless asked"


def test_each_mart_task_publishes_its_registered_asset(dag, manifest):
    from csops_airflow.assets import mart_asset

    marts = [node["name"] for node in manifest["nodes"].values()
             if node["resource_type"] == "model" and node["fqn"][1] == "marts"]
    assert marts
    task_ids = set(dag.task_ids)
    for mart in marts:
        *_, last = model_task_ids(task_ids, mart)
        assert dag.get_task(last).outlets == [mart_asset(mart)], \
            "declared at parse time, so Airflow registers the Asset; updated once the mart and its tests passed"
    assert sum(bool(task.outlets) for task in dag.tasks) == len(marts)
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
    assert completed.stdout.strip().splitlines()[-1] == "['cs_activation', 'cs_daily'] []"


def test_a_missing_manifest_is_named_with_the_fix(manifest, tmp_path):
    moved = settings.dbt_project_dir() / "target" / "manifest.json.moved"
    (settings.dbt_project_dir() / "target" / "manifest.json").rename(moved)
    try:
        completed = subprocess.run([str(VENV_BIN / "python"), "-c", LIST_DAGS], cwd=tmp_path, capture_output=True,
                                   text=True, env=bare_airflow_environment(tmp_path / "airflow-home"), timeout=300)
    finally:
        moved.rename(settings.dbt_project_dir() / "target" / "manifest.json")
    assert "manifest.json is missing" in completed.stdout and "make manifest" in completed.stdout
