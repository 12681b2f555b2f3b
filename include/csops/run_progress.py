"""Turn the output of `airflow dags test` into a short account of the run, one line per stage.

`airflow dags test` prints every task's full log (thousands of lines). `csops run` writes all of it to a
log file and feeds each line to `RunProgress`, which reports only what a person watching wants: a stage
(a task group, or a task outside any group) starting and finishing with its task count, rows loaded and
elapsed time, progress every few seconds (tasks started, and dbt nodes done while dbt builds), and any task
that fails, as it fails. The sources' extract groups run side by side, so they are one stage, `extract`.

`airflow dags test` runs one task at a time, in an order of its choosing among the tasks that are ready: a
task outside any group (`source_freshness`) may run in the middle of a group's tasks. Such a task is
reported on one line once it is over, and the group it interrupted goes on as the same stage; its time
does not count towards the group's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TASK_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)")
TASK_RUNNING = re.compile(r"\[DAG TEST\] running task <TaskInstance: \S+ \S+ (?:map_index=(?P<index>-?\d+) )?"
                          r".*ti_id=(?P<ti>[0-9a-f-]+)>")
STATE_UPDATED = re.compile(r"Task instance state updated .*new_state=(?P<state>\w+).*ti_id=(?P<ti>[0-9a-f-]+)")
TABLE_LOADED = re.compile(r"\S+: (?:full|incremental) load, (?P<read>\d+) read")
# dbt's line for a node it has finished: "12 of 316 OK created sql view model …", "40 of 316 FAIL 3 …"; not its
# hooks' ("1 of 1 OK hook: …"), nor its JSON log lines, which a failed build's error repeats.
DBT_NODE_DONE = re.compile(r"^[^{].*\b(?P<done>\d+) of (?P<total>\d+) (?:OK|PASS|WARN|ERROR|FAIL|SKIP)\b(?! hook:)")
PROGRESS_EVERY_SECONDS = 15.0
FAILED_STATES = ("failed", "up_for_retry")


def stage_of(task_id: str) -> str:
    """The stage a task belongs to: its task group (every `<source>_extract` group is `extract`), or itself."""
    group = task_id.split(".", 1)[0]
    return "extract" if group.endswith("_extract") else group


def is_grouped(task_id: str) -> bool:
    return "." in task_id


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


@dataclass
class Stage:
    name: str
    started: float
    grouped: bool
    tasks: int = 0
    failed: list[str] = field(default_factory=list)
    rows: int = 0
    tables: int = 0
    nodes_done: int = 0
    nodes_total: int = 0
    paused_at: float | None = None
    paused_for: float = 0.0

    def elapsed(self, now: float) -> float:
        return (self.paused_at if self.paused_at is not None else now) - self.started - self.paused_for


class RunProgress:
    """Feed it the lines of `airflow dags test`; it calls `report` with the lines worth showing."""

    def __init__(self, report: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self.clock = clock
        self.stage: Stage | None = None
        self.interrupted: Stage | None = None  # a group a task outside any group runs in the middle of
        self.current_task: str | None = None
        self.task_by_ti: dict[str, str] = {}
        self.failed_tasks: list[str] = []
        self.last_report = 0.0

    def feed(self, line: str) -> None:
        if match := TASK_STARTING.search(line):
            task = match["task"] + (f"[{match['index']}]" if match["index"] != "-1" else "")
            self.current_task = task
            self._enter(stage_of(match["task"]), is_grouped(match["task"]))
            self.stage.tasks += 1
            self._maybe_report_progress()
        elif match := TASK_RUNNING.search(line):
            if self.current_task:
                self.task_by_ti[match["ti"]] = self.current_task
        elif match := STATE_UPDATED.search(line):
            if match["state"] in FAILED_STATES:
                task = self.task_by_ti.get(match["ti"], "a task")
                if task not in self.failed_tasks:
                    self.failed_tasks.append(task)
                    if self.stage is not None:
                        self.stage.failed.append(task)
                    self.report(f"  ✗ {task} {match['state'].replace('_', ' ')}; its log is in the run's log file")
        elif self.stage is None:
            return
        elif match := TABLE_LOADED.search(line):
            self.stage.rows += int(match["read"])
            self.stage.tables += 1
        elif match := DBT_NODE_DONE.search(line):
            self.stage.nodes_done += 1
            self.stage.nodes_total = int(match["total"])
            self._maybe_report_progress()

    def finish(self) -> None:
        self._close(self.interrupted)
        self._close(self.stage)
        self.stage = self.interrupted = None

    def _enter(self, name: str, grouped: bool) -> None:
        now = self.clock()
        if self.stage is not None and self.stage.name == name:
            return
        if self.interrupted is not None and self.interrupted.name == name:
            # The group goes on after the task that ran in its middle.
            self._close(self.stage)
            self.stage, self.interrupted = self.interrupted, None
            self.stage.paused_for += now - self.stage.paused_at
            self.stage.paused_at = None
            return
        if self.stage is not None and self.stage.grouped and not grouped and self.interrupted is None:
            # A lone task while a group is open: the group may go on after it. Which it is shows at the next task.
            self.stage.paused_at = now
            self.interrupted, self.stage = self.stage, Stage(name, now, grouped)
            return
        self.finish()
        self.stage = Stage(name, now, grouped)
        self.last_report = now
        self.report(f"▸ {name}")

    def _close(self, stage: Stage | None) -> None:
        if stage is None:
            return
        details = [plural(stage.tasks, "task")]
        if stage.tables:
            details.append(f"{stage.rows:,} rows read from {plural(stage.tables, 'table')}")
        if stage.failed:
            details.append(f"{len(stage.failed)} failed")
        mark = "✗" if stage.failed else "✓"
        self.report(f"{mark} {stage.name}: {', '.join(details)}, {stage.elapsed(self.clock()):.0f}s")

    def _maybe_report_progress(self) -> None:
        now = self.clock()
        if self.interrupted is None and now - self.last_report >= PROGRESS_EVERY_SECONDS:
            self.last_report = now
            details = [plural(self.stage.tasks, "task") + " started"]
            if self.stage.nodes_total:
                details.append(f"{self.stage.nodes_done} of {self.stage.nodes_total} dbt nodes done")
            self.report(f"  … {self.stage.name}: {', '.join(details)}, {self.stage.elapsed(now):.0f}s")
