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
        # A lone task after a group is reported once it is over (the group might have gone on after it).
        "✗ extract: 4 tasks, 238,238 rows read from 2 tables, 1 failed, 7s",
        "✓ summarize: 1 task, 2s",
    ]


def run(progress, now, steps):
    """Feed `progress` one task per (task id, seconds it takes) step, the clock moving on with each."""
    for number, (task, seconds) in enumerate(steps):
        for line in task_lines(task, -1, f"t-{number}", "success"):
            progress.feed(line)
        now[0] += seconds
    progress.finish()


def test_a_lone_task_in_the_middle_of_a_group_does_not_split_it_in_two():
    """`airflow dags test` may run source_freshness between the dbt build and the model tasks."""
    messages, now = [], [0.0]
    run(RunProgress(messages.append, clock=lambda: now[0]), now, [
        ("nexpro_extract.load_table", 10), ("dbt.dbt_producer_watcher", 30), ("source_freshness", 5),
        ("dbt.dbt_producer_watcher_done", 1), ("dbt.stg_a.run", 1), ("dbt.stg_a.test", 1), ("summarize", 2)])
    assert messages == [
        "▸ extract",
        "✓ extract: 1 task, 10s",
        "▸ dbt",
        "✓ source_freshness: 1 task, 5s",
        "  … dbt: 2 tasks started, 30s",  # its time leaves out source_freshness's
        "✓ dbt: 4 tasks, 33s",
        "✓ summarize: 1 task, 2s",
    ]


def test_a_lone_task_between_two_groups_ends_the_first():
    messages, now = [], [0.0]
    run(RunProgress(messages.append, clock=lambda: now[0]), now, [
        ("nexpro_extract.load_table", 10), ("source_freshness", 5), ("dbt.dbt_producer_watcher", 30),
        ("summarize", 2)])
    assert messages == [
        "▸ extract",
        "✓ extract: 1 task, 10s",
        "✓ source_freshness: 1 task, 5s",
        "▸ dbt",
        "✓ dbt: 1 task, 30s",
        "✓ summarize: 1 task, 2s",
    ]


def test_the_dbt_build_reports_nodes_done_as_it_goes():
    messages, now = [], [0.0]
    progress = RunProgress(messages.append, clock=lambda: now[0])
    for line in task_lines("dbt.dbt_producer_watcher", -1, "p-1", "success")[:2]:
        progress.feed(line)
    results = ["OK created sql view model staging.stg_a", "PASS not_null_stg_a_id", "WARN 2 accepted_values_x",
               "ERROR creating sql table model marts.fct_b", "SKIP relation marts.fct_c", "FAIL 3 unique_fct_d_id"]
    for number, result in enumerate(results, start=1):
        now[0] = number * 4.0
        progress.feed(f"2026-11-24T18:06:{number:02}Z [info     ] 18:06:{number:02}  {number} of 316 {result} "
                      f".......... [PASS in 0.5s] [cosmos.operators._watcher.base] loc=base.py:227")
        progress.feed(f"2026-11-24T18:06:{number:02}Z [info     ] 18:06:{number:02}  {number + 1} of 316 START "
                      f"test x .......... [RUN] [cosmos.operators._watcher.base] loc=base.py:227")
    # Neither the on-run-end hook's line nor the JSON lines a failed build's error repeats count.
    progress.feed("2026-11-24T18:06:30Z [info     ] 18:06:30  1 of 1 OK hook: csops.on-run-end.0 ....... [OK in 0.2s]")
    progress.feed('{"data": {}, "info": {"msg": "7 of 316 OK created sql view model staging.stg_a"}}')
    now[0] = 40.0
    progress.feed("2026-11-24T18:06:40Z [info     ] 18:06:40  7 of 316 PASS not_null_x ....... [PASS in 0.2s]")
    assert messages == ["▸ dbt", "  … dbt: 1 task started, 4 of 316 dbt nodes done, 16s",
                        "  … dbt: 1 task started, 7 of 316 dbt nodes done, 40s"]


def test_a_long_stage_reports_progress_now_and_then():
    messages, now = [], [0.0]
    progress = RunProgress(messages.append, clock=lambda: now[0])
    for number in range(40):
        now[0] = number * 1.0
        for line in task_lines(f"dbt.model_{number}_model_build", -1, f"t-{number}", "success"):
            progress.feed(line)
    assert [message for message in messages if message.startswith("  … dbt")] == [
        "  … dbt: 16 tasks started, 15s", "  … dbt: 31 tasks started, 30s"]
