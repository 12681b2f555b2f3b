"""Turn the output of `airflow dags test` into a short account of the run, one line per stage.

`airflow dags test` prints every task's full log (thousands of lines). `csops run` writes all of it to a
log file and feeds each line to `RunProgress`, which reports only what a person watching wants: a stage
(a task group, or a task outside any group) starting and finishing with its task count, rows loaded and
elapsed time, dbt progress every few seconds, and any task that fails, as it fails. The sources' extract
groups run side by side, so they are one stage, `extract`.
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
PROGRESS_EVERY_SECONDS = 15.0
FAILED_STATES = ("failed", "up_for_retry")


def stage_of(task_id: str) -> str:
    """The stage a task belongs to: its task group (every `<source>_extract` group is `extract`), or itself."""
    group = task_id.split(".", 1)[0]
    return "extract" if group.endswith("_extract") else group


@dataclass
class Stage:
    name: str
    started: float
    tasks: int = 0
    failed: list[str] = field(default_factory=list)
    rows: int = 0
    tables: int = 0


class RunProgress:
    """Feed it the lines of `airflow dags test`; it calls `report` with the lines worth showing."""

    def __init__(self, report: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self.clock = clock
        self.stage: Stage | None = None
        self.current_task: str | None = None
        self.task_by_ti: dict[str, str] = {}
        self.failed_tasks: list[str] = []
        self.last_report = 0.0

    def feed(self, line: str) -> None:
        if match := TASK_STARTING.search(line):
            task = match["task"] + (f"[{match['index']}]" if match["index"] != "-1" else "")
            self.current_task = task
            self._enter(stage_of(match["task"]))
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
        elif (match := TABLE_LOADED.search(line)) and self.stage is not None:
            self.stage.rows += int(match["read"])
            self.stage.tables += 1

    def finish(self) -> None:
        self._close_stage()

    def _enter(self, name: str) -> None:
        if self.stage is not None and self.stage.name == name:
            return
        self._close_stage()
        self.stage = Stage(name, self.clock())
        self.last_report = self.stage.started
        self.report(f"▸ {name}")

    def _close_stage(self) -> None:
        stage, self.stage = self.stage, None
        if stage is None:
            return
        details = [f"{stage.tasks} task{'s' if stage.tasks != 1 else ''}"]
        if stage.tables:
            details.append(f"{stage.rows:,} rows read from {stage.tables} table{'s' if stage.tables != 1 else ''}")
        if stage.failed:
            details.append(f"{len(stage.failed)} failed")
        mark = "✗" if stage.failed else "✓"
        self.report(f"{mark} {stage.name}: {', '.join(details)}, {self.clock() - stage.started:.0f}s")

    def _maybe_report_progress(self) -> None:
        now = self.clock()
        if now - self.last_report >= PROGRESS_EVERY_SECONDS:
            self.last_report = now
            self.report(f"  … {self.stage.name}: {self.stage.tasks} tasks started, "
                        f"{now - self.stage.started:.0f}s")
