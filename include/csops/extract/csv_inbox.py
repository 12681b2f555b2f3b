"""The manual path: usage exports (CSV) dropped into a folder are validated and merged into raw tables.

A file is named after the raw table it feeds (`login_events_2026-11.csv` feeds `raw_nexpro.login_events`),
has a header row naming raw columns — at least every column the source requires (NOT NULL there, as
recorded by the extract in `ops.source_columns`), which always includes the key and `updated_at` — and
is UTF-8 or Shift_JIS (Excel's Japanese default). A timestamp without an offset is read as Tokyo time.
Every row is checked against the raw table's types before anything is written:

- all good: the rows are merged on the table's key in one transaction, and the file moves to
  `archive/<date>/`;
- anything wrong, or any failure while loading: nothing from the file is loaded, it moves to `rejected/`
  next to `<file>.reason.txt`, which names each bad line (or the error) and what to fix, and the other
  files and the rest of the run go on.

CSV rows are marked in the raw table with their file (`_source_file`). The newer version of a row wins:
a file's row replaces an extracted row only when its `updated_at` is later, and a later extract replaces
it only with a version at least as new. A full refresh of the table keeps CSV rows.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from csops.extract.engine import (
    LoadResult,
    SourceTable,
    ensure_schemas,
    identifiers,
    merge_into,
    record_run,
    table_columns,
)
from csops.settings import BUSINESS_TIMEZONE

log = logging.getLogger(__name__)
MAX_REASONS = 50
LINE = "_line"


@dataclass
class FileOutcome:
    file: str
    table: str | None
    status: str  # loaded | rejected | waiting
    rows: int = 0
    reasons: tuple[str, ...] = ()


class RejectedFile(Exception):
    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons[:3]))
        self.reasons = reasons


def decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RejectedFile(["the file is neither UTF-8 nor Shift_JIS text; save it as CSV UTF-8 and drop it again"])


def table_for(path: Path, tables: dict[str, SourceTable]) -> SourceTable:
    matches = [name for name in tables if path.stem == name or path.stem.startswith(name + "_")]
    if not matches:
        raise RejectedFile([f"the file name must start with the table it feeds, one of: {', '.join(tables)} "
                            f"(e.g. login_events_2026-11.csv)"])
    return tables[max(matches, key=len)]


def required_columns(connection: psycopg.Connection, source_name: str, table: SourceTable) -> list[str]:
    """The columns every file row must fill: NOT NULL in the source (as the extract last saw it), the key
    and the version column (which decides whether a CSV row or an extracted one is newer)."""
    always = [*table.primary_key, table.watermark_column]
    recorded = connection.execute(
        "select column_name, is_required from ops.source_columns where source_name = %s and table_name = %s "
        "order by ordinal", (source_name, table.name)).fetchall()
    required = [name for name, is_required in recorded if is_required or name in always]
    return required + [name for name in always if name not in required]


def parse(text: str, raw_columns: dict[str, str], required: list[str], qualified: str) -> tuple[list[str], list]:
    """Header and rows (with their line numbers); structural problems raise RejectedFile."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise RejectedFile(["the file is empty; it needs a header row naming the columns"])
    columns = [name.strip().lower() for name in header]
    problems = []
    unknown = [c for c in columns if c not in raw_columns or c.startswith("_")]
    if unknown:
        problems.append(f"line 1: column(s) {', '.join(unknown)} are not columns of {qualified}; "
                        f"known columns: {', '.join(c for c in raw_columns if not c.startswith('_'))}")
    missing = [c for c in required if c not in columns]
    if missing:
        problems.append(f"line 1: required column(s) {', '.join(missing)} missing; the source requires "
                        f"{', '.join(required)} on every row")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        problems.append(f"line 1: column(s) {', '.join(duplicated)} appear twice")
    if problems:
        raise RejectedFile(problems)
    rows = []
    for values in reader:
        if not values:
            continue
        if len(values) != len(columns):
            problems.append(f"line {reader.line_num}: {len(values)} fields, but the header has {len(columns)}")
            continue
        rows.append((reader.line_num, *[value if value.strip() != "" else None for value in values]))
    if problems:
        raise RejectedFile(problems)
    if not rows:
        raise RejectedFile(["the file has a header but no rows"])
    return columns, rows


def validate(connection: psycopg.Connection, stage: sql.Identifier, columns: list[str],
             raw_columns: dict[str, str], key: tuple[str, ...], required: list[str]) -> list[str]:
    """Every value must parse as its raw column's type, required values must be filled, keys unique."""
    checks = []
    for column in columns:
        checks.append(sql.SQL(
            "select {line}, format({message}, {c}) from {stage} "
            "where {c} is not null and not pg_input_is_valid({c}, {type})").format(
            line=sql.Identifier(LINE), stage=stage, c=sql.Identifier(column), type=sql.Literal(raw_columns[column]),
            message=sql.Literal(f"column {column}: %L is not a valid {raw_columns[column]}")))
    for column in required:
        kind = "key column" if column in key else "required column"
        checks.append(sql.SQL("select {line}, {message} from {stage} where {c} is null").format(
            line=sql.Identifier(LINE), stage=stage, c=sql.Identifier(column),
            message=sql.Literal(f"{kind} {column} is empty")))
    checks.append(sql.SQL(
        "select max({line}), 'same key as line(s) ' || string_agg({line}::text, ', ' order by {line}) "
        "|| ': each key may appear once per file' from {stage} group by {key} having count(*) > 1").format(
        line=sql.Identifier(LINE), stage=stage, key=identifiers(key)))
    query = sql.SQL(" union all ").join(checks) + sql.SQL(" order by 1 limit {}").format(
        sql.Literal(MAX_REASONS + 1))
    return [f"line {line}: {message}" for line, message in connection.execute(query).fetchall()]


def load_file(connection: psycopg.Connection, path: Path, tables: dict[str, SourceTable], *, source_name: str,
              raw_schema: str, run_id: str) -> FileOutcome:
    table = table_for(path, tables)
    qualified = f"{raw_schema}.{table.name}"
    raw_columns = {name: data_type for name, data_type in table_columns(connection, raw_schema, table.name).items()
                   if not name.startswith("_")}
    if not raw_columns:
        return FileOutcome(path.name, table.name, "waiting",
                           reasons=(f"{qualified} does not exist yet; the file waits for the first extract",))
    required = required_columns(connection, source_name, table)
    columns, rows = parse(decode(path.read_bytes()), raw_columns, required, qualified)
    result = LoadResult(source_name=f"csv:{path.name}", table_name=table.name, run_id=run_id, load_mode="csv")
    clock = time.monotonic()
    with connection.transaction():
        # The business zone: a timestamp written without an offset is Tokyo time.
        connection.execute(sql.SQL("set local timezone to {}").format(sql.Literal(BUSINESS_TIMEZONE)))
        result.started_at = connection.execute("select clock_timestamp()").fetchone()[0]
        stage = sql.Identifier(f"csv_stage_{table.name}")
        connection.execute(sql.SQL("create temporary table {} ({} integer, {}) on commit drop").format(
            stage, sql.Identifier(LINE), sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c))
                                                           for c in columns)))
        with connection.cursor().copy(sql.SQL("copy {} ({}, {}) from stdin").format(
                stage, sql.Identifier(LINE), identifiers(columns))) as copy:
            for row in rows:
                copy.write_row(row)
        problems = validate(connection, stage, columns, raw_columns, table.primary_key, required)
        if problems:
            raise RejectedFile(problems)
        result.rows_read = len(rows)
        result.rows_inserted, result.rows_updated = merge_into(
            connection, stage, sql.Identifier(raw_schema, table.name), columns, table.primary_key,
            {column: raw_columns[column] for column in columns}, version_column=table.watermark_column,
            source_file=path.name)
        result.status = "succeeded"
        result.duration_seconds = time.monotonic() - clock
        record_run(connection, result)
    return FileOutcome(path.name, table.name, "loaded", rows=len(rows))


def process_inbox(warehouse_url: str, inbox: Path, tables: dict[str, SourceTable], *, source_name: str,
                  raw_schema: str, run_id: str, today: date) -> list[FileOutcome]:
    """Load every CSV in `inbox`; archive what loaded, reject what did not. Returns one outcome per file.

    Never raises for a file: whatever goes wrong with one (bad content, a database error) rejects that
    file with the error, and the next file is loaded.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    outcomes = []
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        ensure_schemas(connection)
        for path in sorted(inbox.glob("*.csv")):
            try:
                outcome = load_file(connection, path, tables, source_name=source_name, raw_schema=raw_schema,
                                    run_id=run_id)
            except Exception as error:
                rejection = error if isinstance(error, RejectedFile) else RejectedFile(
                    [f"loading failed: {type(error).__name__}: {str(error).strip()}; nothing from the file was "
                     f"kept. Fix the file (or the warehouse problem named here) and drop it again"])
                try:
                    table_name = table_for(path, tables).name
                except RejectedFile:
                    table_name = None
                outcome = FileOutcome(path.name, table_name, "rejected", reasons=tuple(rejection.reasons))
            if outcome.status == "loaded":
                move(path, inbox / "archive" / today.isoformat())
                log.info("inbox: %s loaded into %s.%s (%s rows) and archived", path.name, raw_schema,
                         outcome.table, outcome.rows)
            elif outcome.status == "rejected":
                target = move(path, inbox / "rejected")
                shown = list(outcome.reasons[:MAX_REASONS])
                if len(outcome.reasons) > MAX_REASONS:
                    shown.append("... and more; fix the lines above and drop the file again")
                target.with_name(target.name + ".reason.txt").write_text(
                    f"{path.name} was rejected; nothing from it was loaded.\n\n" + "\n".join(shown) + "\n")
                log.warning("inbox: %s rejected (%s); see %s.reason.txt", path.name, outcome.reasons[0], target)
                with connection.transaction():  # the run's audit (and summary) lists rejected files too
                    record_run(connection, LoadResult(
                        source_name=f"csv:{path.name}", table_name=outcome.table or "(unknown)", run_id=run_id,
                        load_mode="csv", status="rejected",
                        error=f"{outcome.reasons[0]} (all reasons: {target}.reason.txt)"))
            else:
                log.warning("inbox: %s left in place: %s", path.name, outcome.reasons[0])
            outcomes.append(outcome)
    return outcomes


def skip_if_rejected(outcomes: list[FileOutcome]) -> None:
    """End the inbox task as skipped, with the reasons, when a file was rejected: the grid then shows that
    something needs a look (a green task would hide it), while the files that loaded stay loaded and the run's
    dbt build goes on (it runs when its upstream tasks succeeded or were skipped, not when one failed)."""
    rejected = [outcome for outcome in outcomes if outcome.status == "rejected"]
    if not rejected:
        return
    from airflow.sdk.exceptions import AirflowSkipException

    loaded = sum(outcome.status == "loaded" for outcome in outcomes)
    raise AirflowSkipException(
        f"{len(rejected)} CSV file(s) rejected, nothing loaded from them: "
        + "; ".join(f"{outcome.file}: {outcome.reasons[0]}" for outcome in rejected)
        + f". Every reason is in rejected/<file>.reason.txt: fix the lines and drop the file into the inbox again. "
        f"{loaded} other file(s) loaded; the run goes on.")


def move(path: Path, folder: Path) -> Path:
    """Move `path` into `folder`, never overwriting an earlier file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    shutil.move(path, target)
    return target
