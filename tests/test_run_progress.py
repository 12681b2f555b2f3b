"""The account `csops run` prints of a DAG run, from the lines `airflow dags test` writes."""

from __future__ import annotations

from csops.run_progress import RunProgress

RUN = "manual__2026-11-24T18:06:00.855410+00:00"


def task_lines(task: str, map_index: int, ti: str, state: str) -> list[str]:
    shown_index = f"map_index={map_index} " if map_index >= 0 else ""
    return [
        f"2026-11-24T18:06:05Z [info     ] [DAG TEST] starting task_id={task} map_index={map_index} [dag]",
        f"2026-11-24T18:06:05Z [info     ] [DAG TEST] running task <TaskInstance: cs_daily.{task} {RUN} "
        f"{shown_index}[TaskInstanceState.SCHEDULED] ti_id={ti}> [airflow.sdk.definitions.dag] loc=dag.py:1504",
        f"2026-11-24T18:06:06Z [info     ] Task instance state updated    [routes] loc=task_instances.py:485 "
        f"new_state={state} rows_affected=1 ti_id={ti}",
        f"2026-11-24T18:06:06Z [info     ] [DAG TEST] end task task_id={task} map_index={map_index} [dag]",
    ]


def test_stages_are_reported_with_tasks_rows_failures_and_time():
    messages, now = [], [0.0]
    progress = RunProgress(messages.append, clock=lambda: now[0])
    lines = [
        *task_lines("nexpro_extract.load_table", 0, "aaaa-1", "success"),
        "2026-11-24T18:06:05Z [info ] raw_nexpro.login_events: full load, 238116 read, 238116 inserted, 0 updated",
        *task_lines("nexpro_extract.load_table", 1, "aaaa-2", "failed"),
        *task_lines("nexpro_extract.load_csv_inbox", -1, "aaaa-3", "upstream_failed"),
        # The Salesforce group runs beside Nexpro's, interleaved: still one stage.
        *task_lines("salesforce_extract.load_object", 0, "aaaa-4", "success"),
        "2026-11-24T18:06:05Z [info ] raw_salesforce.account: full load, 122 read, 122 inserted, 0 updated, "
        "0 deleted, 0 quarantined, 4 API calls in 0.1s (succeeded)",
    ]
    for line in lines:
        progress.feed(line)
    now[0] = 7.0
    for line in task_lines("summarize", -1, "bbbb-1", "success"):
        progress.feed(line)
    now[0] = 9.0
    progress.finish()

    assert messages == [
        "▸ extract",
        "  ✗ nexpro_extract.load_table[1] failed; its log is in the run's log file",
        "✗ extract: 4 tasks, 238,238 rows read from 2 tables, 1 failed, 7s",
        "▸ summarize",
        "✓ summarize: 1 task, 2s",
    ]


def test_a_long_stage_reports_progress_now_and_then():
    messages, now = [], [0.0]
    progress = RunProgress(messages.append, clock=lambda: now[0])
    for number in range(40):
        now[0] = number * 1.0
        for line in task_lines(f"dbt.model_{number}_model_build", -1, f"t-{number}", "success"):
            progress.feed(line)
    assert [message for message in messages if message.startswith("  … dbt")] == [
        "  … dbt: 16 tasks started, 15s", "  … dbt: 31 tasks started, 30s"]
