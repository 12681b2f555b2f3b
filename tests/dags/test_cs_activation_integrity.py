"""DAG integrity: cs_activation imports cleanly, runs after cs_daily's marts, and is wired as documented."""

from __future__ import annotations

import socket
import subprocess
from datetime import date
from types import SimpleNamespace

import pendulum
import pytest

from csops import settings
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


def test_the_killswitch_comes_first_and_the_summary_always_runs(dag):
    order = ["killswitch", "write_back", "playbooks", "slack_digest", "summarize"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids - {"killswitch"} == ({upstream} - {"killswitch"})
    for task_id in order[1:4]:
        assert "killswitch" in dag.get_task(task_id).upstream_task_ids, f"{task_id} takes the killswitch's verdict"
    assert dag.get_task("killswitch").retries == 0, "a verdict is not retried into a different one"
    assert dag.get_task("playbooks").trigger_rule == "all_done", "a failed write-back does not hold tasks back"
    summarize = dag.get_task("summarize")
    assert summarize.is_teardown, "it runs whatever happened, and a failed run still fails"
    assert dag.doc_md and "killswitch" in dag.doc_md


def test_params_dry_run_run_date_and_override(dag):
    params = dag.params
    assert params["dry_run"] is settings.activation_dry_run() is False
    assert params["run_date"] == "" and params["override_killswitch"] is False


def event(uri: str, day: int, hour: int = 6, run_type: str = "scheduled", minute: int = 0):
    """An Asset event of a cs_daily run that started at `hour`:`minute` Tokyo time on November `day`."""
    moment = pendulum.datetime(2026, 11, day, hour, minute, tz="Asia/Tokyo")
    return SimpleNamespace(asset=SimpleNamespace(uri=uri), timestamp=moment.add(minutes=40),
                           source_run_id=f"{run_type}__2026-11-{day:02d}T{hour:02d}:{minute:02d}",
                           source_dag_run=SimpleNamespace(logical_date=moment, run_after=moment, run_type=run_type))


HEALTH, SIGNALS = "csops://warehouse/marts/fct_health_scores", "csops://warehouse/marts/fct_company_signals"


def test_the_run_date_is_the_triggering_cs_daily_runs():
    from csops_airflow.assets import ActivationDate, activation_date

    later = pendulum.datetime(2026, 11, 21, 7, 10, tz="Asia/Tokyo")
    both = [event(HEALTH, 21), event(SIGNALS, 21)]
    assert activation_date("", both, None, later) == ActivationDate(date(2026, 11, 20), both[-1].source_run_id)
    assert activation_date("2026-11-18", both, None, later) == ActivationDate(date(2026, 11, 18)), "asked for"
    assert activation_date("", [], None, later) == ActivationDate(date(2026, 11, 20)), "by hand: the previous day"
    rerun = [event(HEALTH, 20), event(SIGNALS, 20), event(HEALTH, 21), event(SIGNALS, 21, minute=5)]
    assert activation_date("", rerun, None, later).run_date == date(2026, 11, 20), "each Asset's latest event"


def test_the_schedule_waits_for_both_marts_and_refuses_a_mix_of_days(dag):
    """Airflow starts the activation once both Assets were updated since its last run, by whichever runs: an
    all-of-both schedule does not promise one cs_daily run. The activation checks it, and fires on no mix."""
    from csops_airflow.assets import MismatchedAssetEvents, activation_date, mart_asset

    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert {asset.uri for asset in condition.objects} == {mart_asset("fct_health_scores").uri,
                                                          mart_asset("fct_company_signals").uri} == {HEALTH, SIGNALS}
    assert dag.catchup is False and dag.max_active_runs == 1
    later = pendulum.datetime(2026, 11, 22, 7, 10, tz="Asia/Tokyo")
    # The signals' task of the 21st's run failed; the 22nd's run updated the health scores only.
    with pytest.raises(MismatchedAssetEvents, match="built for different dates: .*fct_company_signals for "
                                                    "2026-11-20 .*fct_health_scores for 2026-11-21"):
        activation_date("", [event(SIGNALS, 21), event(HEALTH, 22)], None, later)


def test_a_backfill_of_cs_daily_is_marked_so_the_activation_fires_nothing():
    from csops_airflow.assets import activation_date

    later = pendulum.datetime(2026, 11, 22, 7, 10, tz="Asia/Tokyo")
    day = activation_date("", [event(HEALTH, 3, run_type="backfill"), event(SIGNALS, 3, run_type="backfill")],
                          None, later)
    assert day.backfill and day.run_date == date(2026, 11, 2)
    assert not activation_date("", [event(HEALTH, 21), event(SIGNALS, 21)], None, later).backfill
