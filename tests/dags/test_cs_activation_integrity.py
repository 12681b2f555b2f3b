"""DAG integrity: cs_activation imports cleanly, runs after cs_daily's marts, and is wired as documented."""

from __future__ import annotations

import socket
import subprocess
from datetime import date
from types import SimpleNamespace

import pendulum
import pytest

from csops import settings
from csops.activation.playbooks import activation_run_date
from tests.conftest import REPO_ROOT

DAG_FILE = REPO_ROOT / "dags" / "cs_activation.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["cs_activation"]


def test_import_does_no_database_or_network_work(dag, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("cs_activation.py started a process at import")

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        url = f"postgresql://spy:secret@127.0.0.1:{listener.getsockname()[1]}/db?connect_timeout=1"
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}", url)
        monkeypatch.setattr(subprocess, "Popen", refuse)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAG_FILE))
        assert bag.import_errors == {} and "cs_activation" in bag.dags
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_scheduled_on_the_health_and_signal_marts_that_cs_daily_publishes(dag):
    from csops_airflow.assets import mart_asset

    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll", "both marts, updated by the same cs_daily run"
    assert {asset.uri for asset in condition.objects} == {mart_asset("fct_health_scores").uri,
                                                          mart_asset("fct_company_signals").uri}
    source = (REPO_ROOT / "dags" / "cs_daily.py").read_text()
    assert "outlets = [mart_asset(node.name)]" in source and 'node.fqn[1] == "marts"' in source, \
        "cs_daily updates a mart's Asset when the mart's task finishes"
    assert dag.catchup is False and dag.max_active_runs == 1


def test_the_killswitch_comes_first_and_the_summary_always_runs(dag):
    order = ["killswitch", "write_back", "playbooks", "slack_digest", "summarize"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.get_task("killswitch").retries == 0, "a verdict is not retried into a different one"
    assert dag.get_task("playbooks").trigger_rule == "all_done", "a failed write-back does not hold tasks back"
    summarize = dag.get_task("summarize")
    assert summarize.is_teardown, "it runs whatever happened, and a failed run still fails"
    assert dag.doc_md and "killswitch" in dag.doc_md


def test_params_dry_run_run_date_and_override(dag):
    params = dag.params
    assert params["dry_run"] is settings.activation_dry_run() is False
    assert params["run_date"] == "" and params["override_killswitch"] is False


def test_the_run_date_is_the_triggering_cs_daily_runs(dag):
    morning = pendulum.datetime(2026, 11, 21, 6, 30, tz="Asia/Tokyo")
    event = SimpleNamespace(source_run_id="scheduled__2026-11-20T21:30:00+00:00",
                            source_dag_run=SimpleNamespace(logical_date=morning, run_after=morning))
    later = pendulum.datetime(2026, 11, 21, 7, 10, tz="Asia/Tokyo")
    assert activation_run_date("", [event], None, later) == (date(2026, 11, 20), event.source_run_id)
    assert activation_run_date("2026-11-18", [event], None, later) == (date(2026, 11, 18), None), "asked for"
    assert activation_run_date("", [], None, later) == (date(2026, 11, 20), None), "by hand: the previous day"
