"""Copy a Postgres source table into the warehouse's raw schema: incremental, streamed, idempotent.

How one table is loaded, all in one warehouse transaction against one repeatable-read source snapshot:
1. Describe the source columns. Types the warehouse may not have (enums, domains, other user-defined
   types) are read as their base type or as text. New source columns are added to the raw table (schema
   drift never fails a load); a column whose type changed is loaded through a validated cast. The source's
   columns, types and NOT NULL flags are recorded in `ops.source_columns` (the CSV inbox checks files
   against them).
2. Read the watermark (the largest `updated_at` loaded so far, never later than the source's own clock)
   from `ops.extract_watermarks`.
3. A full load when asked for, when there is no watermark, or when the raw table is missing or empty (a
   watermark without data would silently skip history): the raw table is truncated and the source
   streamed into it with COPY, then its primary key is (re)built. With the server at wal_level=minimal
   this skips WAL. Rows the source no longer has and rows that came from CSV files are set aside first
   and put back, so a full refresh loses neither.
   Otherwise an incremental load: rows with `updated_at >= watermark - overlap` are streamed with COPY
   into a temporary stage table and merged on the primary key; a row is only rewritten when a value
   changed, so re-running a day changes nothing.
4. Hard deletes: the source's key set is streamed into the warehouse and compared with the raw table.
   Rows gone from the source get `_deleted_at` (when the loader first saw them missing) and stay in raw;
   staging leaves them out. A row that comes back is un-flagged.
5. Rows that cannot be loaded (null key, duplicate key, a value that does not fit the raw column's type)
   go to `ops.quarantine` with the reason and the whole record, once per distinct record however many
   runs see it; the rest of the batch loads.
6. Data, watermark and the audit row in `ops.extract_runs` commit together: a failed load leaves the
   warehouse as it was, plus a `failed` audit row saying why.

Rows supplied by a CSV file (the manual path, `csv_inbox.py`) carry `_source_file`. An extract never
replaces such a row with an older version, and a full refresh keeps it.

Nothing is held in Python memory but COPY buffers, so memory stays flat whatever the table size.

The overlap's limit, honestly: a source transaction that commits more than `overlap` after the
`updated_at` it stamped is invisible to the incremental load that ran in between and is older than the
next one's window, so it is missed until a full refresh. Set the overlap above the source
application's longest write transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import errors, pq, sql

from csops.settings import DEFAULT_OVERLAP_MINUTES

log = logging.getLogger(__name__)

OPS_SCHEMA_DDL = """
create schema if not exists ops;
create table if not exists ops.extract_runs (
    run_id            text not null,
    source_name       text not null,
    table_name        text not null,
    load_mode         text not null,
    status            text not null,
    rows_read         bigint not null default 0,
    rows_inserted     bigint not null default 0,
    rows_updated      bigint not null default 0,
    rows_quarantined  bigint not null default 0,
    watermark_from    timestamptz,
    watermark_to      timestamptz,
    added_columns     text[] not null default '{}',
    retyped_columns   text[] not null default '{}',
    started_at        timestamptz not null,
    finished_at       timestamptz not null,
    duration_seconds  numeric(12, 3) not null,
    error             text,
    primary key (run_id, source_name, table_name)
);
alter table ops.extract_runs add column if not exists rows_deleted bigint not null default 0;
-- API calls a load made (sources behind an API with a daily budget; 0 for databases).
alter table ops.extract_runs add column if not exists api_calls integer not null default 0;
create table if not exists ops.extract_watermarks (
    source_name   text not null,
    table_name    text not null,
    watermark     timestamptz not null,
    updated_at    timestamptz not null default now(),
    primary key (source_name, table_name)
);
create table if not exists ops.quarantine (
    quarantine_id  bigint generated always as identity primary key,
    source_name    text not null,
    table_name     text not null,
    run_id         text not null,
    reason         text not null,
    record         jsonb not null,
    quarantined_at timestamptz not null default now()
);
alter table ops.quarantine
    add column if not exists record_hash text,
    add column if not exists times_seen integer not null default 1,
    add column if not exists last_seen_run_id text,
    add column if not exists last_seen_at timestamptz not null default now();
update ops.quarantine set record_hash = md5(record::text), last_seen_run_id = run_id where record_hash is null;
delete from ops.quarantine as later using ops.quarantine as earlier
where later.record_hash = earlier.record_hash and later.source_name = earlier.source_name
    and later.table_name = earlier.table_name and later.quarantine_id > earlier.quarantine_id;
create unique index if not exists quarantine_record_key on ops.quarantine (source_name, table_name, record_hash);
create table if not exists ops.source_columns (
    source_name   text not null,
    table_name    text not null,
    column_name   text not null,
    ordinal       integer not null,
    source_type   text not null,
    raw_type      text not null,
    is_required   boolean not null,
    seen_at       timestamptz not null default now(),
    primary key (source_name, table_name, column_name)
);
-- The Salesforce write-back (csops.activation.writeback): per record, the hash of the values Salesforce last
-- accepted, and the records it rejected (kept with their values and retried on every run until accepted).
create table if not exists ops.sync_ledger (
    object_name   text not null,
    external_id   text not null,
    values_hash   text not null,
    record_id     text,
    sent_at       timestamptz not null,
    run_id        text not null,
    run_date      date not null,
    primary key (object_name, external_id)
);
create table if not exists ops.sync_rejections (
    object_name   text not null,
    external_id   text not null,
    values_hash   text not null,
    record        jsonb not null,
    error_code    text not null,
    message       text not null,
    first_seen_at timestamptz not null,
    last_seen_at  timestamptz not null,
    attempts      integer not null default 1,
    run_id        text not null,
    run_date      date not null,
    resolved_at   timestamptz,
    primary key (object_name, external_id)
);
create index if not exists sync_rejections_open on ops.sync_rejections (object_name) where resolved_at is null;
-- Bulk ingest jobs a write-back left in Salesforce without reading their results (the API budget stopped it
-- mid-job): one row per record the job holds, with the values sent. The next write-back collects them first.
create table if not exists ops.sync_bulk_jobs (
    job_id        text not null,
    object_name   text not null,
    key_field     text not null,
    external_id   text not null,
    values_hash   text not null,
    record        jsonb not null,
    closed        boolean not null,
    run_id        text not null,
    run_date      date not null,
    left_at       timestamptz not null default now(),
    primary key (job_id, external_id)
);
"""
# Recorded as the ops schema's comment once the DDL above has run (see ensure_schemas).
OPS_SCHEMA_VERSION = "csops ops " + hashlib.sha1(OPS_SCHEMA_DDL.encode()).hexdigest()[:12]
LOADED_AT = "_loaded_at"
DELETED_AT = "_deleted_at"
SOURCE_FILE = "_source_file"
BOOKKEEPING_COLUMNS = {LOADED_AT: "timestamptz not null default now()", DELETED_AT: "timestamptz",
                       SOURCE_FILE: "text"}
PROGRESS_EVERY_SECONDS = 10.0
COPY_BLOCK_BYTES = 1 << 20
DEFAULT_OVERLAP = timedelta(minutes=DEFAULT_OVERLAP_MINUTES)


class ExtractError(RuntimeError):
    """A load that cannot proceed, with a message saying what to fix."""


@dataclass(frozen=True)
class SourceTable:
    name: str
    primary_key: tuple[str, ...]
    watermark_column: str = "updated_at"
    source_schema: str = "public"


@dataclass(frozen=True)
class SourceColumn:
    source_type: str
    raw_type: str  # the type the warehouse stores: the source type, or its base type / text
    is_required: bool


@dataclass
class LoadResult:
    source_name: str
    table_name: str
    run_id: str
    load_mode: str = "incremental"
    status: str = "running"
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    api_calls: int = 0
    rows_quarantined: int = 0
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    added_columns: list[str] = field(default_factory=list)
    retyped_columns: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float = 0.0
    error: str | None = None

    def outcome(self) -> dict:
        """What a load task returns (its XCom): the table, how it loaded and the counts."""
        return {"source": self.source_name, "table": self.table_name, "mode": self.load_mode, "status": self.status,
                "read": self.rows_read, "inserted": self.rows_inserted, "updated": self.rows_updated,
                "deleted": self.rows_deleted, "quarantined": self.rows_quarantined, "api_calls": self.api_calls}


def ensure_schemas(connection: psycopg.Connection, *raw_schemas: str) -> None:
    """Create or upgrade the ops tables, and create the given raw schemas, if missing: a short transaction.

    Table loads run in parallel, and a load holds locks on the ops tables for its whole transaction. So the
    DDL runs only when the ops schema is not at this version (its comment records the DDL's hash): its ALTERs
    would wait for those locks and could deadlock with a running load. The advisory lock stops two loads
    racing to create the same object; the version is read again under it.
    """
    with connection.transaction():
        if ops_schema_version(connection) != OPS_SCHEMA_VERSION:
            connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
            if ops_schema_version(connection) != OPS_SCHEMA_VERSION:
                connection.execute(OPS_SCHEMA_DDL)
                connection.execute(sql.SQL("comment on schema ops is {}").format(sql.Literal(OPS_SCHEMA_VERSION)))
        for schema in raw_schemas:
            connection.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))


def ops_schema_version(connection: psycopg.Connection) -> str | None:
    return connection.execute("select obj_description(to_regnamespace('ops'), 'pg_namespace')").fetchone()[0]


def qualified_name(connection: psycopg.Connection, schema: str, table: str) -> str:
    return sql.Identifier(schema, table).as_string(connection)


def table_columns(connection: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    """Column name -> SQL type, in table order; empty when the table does not exist."""
    rows = connection.execute(
        """
        select attname, format_type(atttypid, atttypmod) from pg_attribute
        where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped
        order by attnum
        """,
        (qualified_name(connection, schema, table),),
    ).fetchall()
    return dict(rows)


def source_columns(connection: psycopg.Connection, table: SourceTable) -> dict[str, SourceColumn]:
    """The source table's columns in order; types outside pg_catalog are mapped to ones every Postgres has.

    A domain becomes its base type (following domains over domains); an enum, a composite, an array of
    those or an extension's type becomes text, which every such value can be cast to.
    """
    rows = connection.execute(
        """
        with recursive attributes as (
            select attnum, attname, format_type(atttypid, atttypmod) as source_type, attnotnull,
                atttypid as type_oid, atttypmod as type_mod
            from pg_attribute
            where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped
        ),
        resolved as (
            select attnum, type_oid, type_mod, 0 as depth from attributes
            union all
            select resolved.attnum, domain_type.typbasetype, domain_type.typtypmod, resolved.depth + 1
            from resolved
            join pg_type as domain_type on domain_type.oid = resolved.type_oid and domain_type.typtype = 'd'
        ),
        base as (
            select distinct on (attnum) attnum, type_oid, type_mod from resolved order by attnum, depth desc
        )
        select attributes.attname, attributes.source_type,
            case when namespace.nspname = 'pg_catalog' and base_type.typtype <> 'c'
                    and coalesce(element_namespace.nspname, 'pg_catalog') = 'pg_catalog'
                then format_type(base.type_oid, base.type_mod) else 'text' end as raw_type,
            attributes.attnotnull
        from attributes
        join base on base.attnum = attributes.attnum
        join pg_type as base_type on base_type.oid = base.type_oid
        join pg_namespace as namespace on namespace.oid = base_type.typnamespace
        left join pg_type as element_type on element_type.oid = nullif(base_type.typelem, 0)
            and base_type.typcategory = 'A'
        left join pg_namespace as element_namespace on element_namespace.oid = element_type.typnamespace
        order by attributes.attnum
        """,
        (qualified_name(connection, table.source_schema, table.name),),
    ).fetchall()
    return {name: SourceColumn(source_type, raw_type, required) for name, source_type, raw_type, required in rows}


def source_enforces_key(connection: psycopg.Connection, table: SourceTable) -> bool:
    """True when the source's own constraints rule out null and duplicate keys, so checks can be skipped."""
    relation = qualified_name(connection, table.source_schema, table.name)
    not_null = connection.execute(
        "select coalesce(bool_and(attnotnull), false) from pg_attribute "
        "where attrelid = to_regclass(%s) and attname = any(%s)", (relation, list(table.primary_key))).fetchone()[0]
    unique_keys = connection.execute(
        """
        select array_agg(attribute.attname order by attribute.attname)
        from pg_index as index_
        join pg_attribute as attribute
            on attribute.attrelid = index_.indrelid and attribute.attnum = any(index_.indkey)
        where index_.indrelid = to_regclass(%s) and index_.indisunique and index_.indpred is null
        group by index_.indexrelid
        """, (relation,)).fetchall()
    return not_null and sorted(table.primary_key) in [key for (key,) in unique_keys]


def identifiers(names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def key_matches(left: str, right: str, key: tuple[str, ...]) -> sql.Composed:
    """`left.k1 = right.k1 and ...` for the key columns."""
    return sql.SQL(" and ").join(sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), sql.Identifier(column),
                                                                 sql.Identifier(right), sql.Identifier(column))
                                 for column in key)


def quarantine_rows(connection: psycopg.Connection, relation: sql.Composable, condition: sql.Composable,
                    reason: sql.Composable, *, source_name: str, table_name: str, run_id: str) -> int:
    """Move the rows of `relation` matching `condition` to ops.quarantine with `reason` (an SQL expression).

    Returns how many rows were set aside. A record already in quarantine for this table (an overlapping
    or retried run saw it before) is not stored again: its `times_seen`, `last_seen_at` and
    `last_seen_run_id` move on instead.
    """
    statement = sql.SQL("""
        with bad as (delete from {relation} as candidate where {condition} returning candidate.*),
        described as (
            select {reason} as reason, to_jsonb(candidate) - {bookkeeping} as record from bad as candidate
        ),
        stored as (
            insert into ops.quarantine (source_name, table_name, run_id, last_seen_run_id, reason, record,
                                        record_hash)
            select distinct on (md5(record::text)) {source_name}, {table_name}, {run_id}, {run_id}, reason, record,
                md5(record::text)
            from described
            on conflict (source_name, table_name, record_hash) do update set
                times_seen = ops.quarantine.times_seen + 1, last_seen_at = now(),
                last_seen_run_id = excluded.last_seen_run_id, reason = excluded.reason
        )
        select count(*) from described
    """).format(relation=relation, condition=condition, reason=reason, source_name=sql.Literal(source_name),
                table_name=sql.Literal(table_name), run_id=sql.Literal(run_id),
                bookkeeping=sql.Literal(list(BOOKKEEPING_COLUMNS)) + sql.SQL("::text[]"))
    # No query parameters: reasons may hold format() templates whose % must reach Postgres untouched.
    return connection.execute(statement).fetchone()[0]


def quarantine_null_keys(connection, relation, key: tuple[str, ...], **labels) -> int:
    condition = sql.SQL(" or ").join(sql.SQL("candidate.{} is null").format(sql.Identifier(c)) for c in key)
    reason = sql.Literal(f"null primary key ({', '.join(key)}): the row cannot be matched to later updates; "
                         "fix the row in the source system")
    return quarantine_rows(connection, relation, condition, reason, **labels)


def quarantine_duplicate_keys(connection, relation, key: tuple[str, ...], order_by: str, **labels) -> int:
    """Keep the most recently updated copy of each key; quarantine the others."""
    condition = sql.SQL("""candidate.ctid in (
            select row_ctid from (
                select ctid as row_ctid,
                    row_number() over (partition by {key} order by {order_by} desc nulls last) as copy_rank
                from {relation}
            ) as ranked
            where copy_rank > 1
        )""").format(key=identifiers(key), order_by=sql.Identifier(order_by), relation=relation)
    key_text = sql.SQL(" || ', ' || ").join(sql.SQL("candidate.{}::text").format(sql.Identifier(c)) for c in key)
    reason = sql.SQL("{prefix} || {key_text} || {suffix}").format(
        prefix=sql.Literal(f"duplicate primary key ({', '.join(key)}) = ("), key_text=key_text,
        suffix=sql.Literal("): the source holds several rows with this key; kept the most recently updated one"))
    return quarantine_rows(connection, relation, condition, reason, **labels)


def quarantine_bad_values(connection, relation, column: str, target_type: str, qualified_raw: str,
                          **labels) -> int:
    """Quarantine rows whose `column` does not parse as `target_type` (the raw column's type)."""
    condition = sql.SQL("candidate.{c} is not null and not pg_input_is_valid(candidate.{c}::text, {t})").format(
        c=sql.Identifier(column), t=sql.Literal(target_type))
    reason = sql.SQL("format({template}, candidate.{c}::text)").format(
        template=sql.Literal(f"column {column}: %L is not a valid {target_type}; fix the value in the source, "
                             f"or change {qualified_raw}.{column} to the source's new type"),
        c=sql.Identifier(column))
    return quarantine_rows(connection, relation, condition, reason, **labels)


def merge_into(connection: psycopg.Connection, stage: sql.Composable, target: sql.Composable,
               columns: list[str], key: tuple[str, ...], casts: dict[str, str], *, version_column: str,
               source_file: str | None = None) -> tuple[int, int]:
    """Upsert `stage` into `target` on `key`; rows are only rewritten when a value differs.

    Returns (inserted, updated). `casts` maps a column to the target type it must be cast to. Rows from
    the extract (`source_file` None) never replace a row a CSV file supplied with an older version
    (`version_column`, the watermark column, says which is newer); rows from a CSV file replace an
    extracted row only when strictly newer, and an earlier file's row when at least as new.
    """
    select_list = [sql.SQL("{c}::text::{t}").format(c=sql.Identifier(c), t=sql.SQL(casts[c])) if c in casts
                   else sql.Identifier(c) for c in columns]
    insert_columns = list(columns)
    if source_file is not None:
        select_list.append(sql.Literal(source_file))
        insert_columns.append(SOURCE_FILE)
    non_key = [c for c in columns if c not in key]
    version = sql.Identifier(version_column)
    if source_file is None:
        newer = sql.SQL("(target.{file} is null or target.{v} <= excluded.{v})")
    else:
        newer = sql.SQL("(target.{v} < excluded.{v} or (target.{file} is not null and target.{v} <= excluded.{v}))")
    newer = newer.format(file=sql.Identifier(SOURCE_FILE), v=version)
    if non_key:
        assignments = sql.SQL(", ").join(
            [sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in non_key]
            + [sql.SQL("{c} = now()").format(c=sql.Identifier(LOADED_AT)),
               sql.SQL("{c} = {v}").format(c=sql.Identifier(SOURCE_FILE), v=sql.Literal(source_file))])
        changed = sql.SQL("({}) is distinct from ({})").format(
            sql.SQL(", ").join(sql.SQL("target.{}").format(sql.Identifier(c)) for c in [key[0], *non_key]),
            sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in [key[0], *non_key]))
        conflict = sql.SQL("do update set {} where {} and {}").format(assignments, changed, newer)
    else:  # a file of keys only: it can add keys, there is nothing to update
        conflict = sql.SQL("do nothing")
    statement = sql.SQL("""
        with merged as (
            insert into {target} as target ({columns})
            select {select_list} from {stage}
            on conflict ({key}) {conflict}
            returning (xmax = 0) as inserted
        )
        select count(*) filter (where inserted), count(*) filter (where not inserted) from merged
    """).format(target=target, columns=identifiers(insert_columns), select_list=sql.SQL(", ").join(select_list),
                stage=stage, key=identifiers(key), conflict=conflict)
    inserted, updated = connection.execute(statement).fetchone()
    return inserted, updated


def ensure_primary_key(connection, target: sql.Composable, table: str, key: tuple[str, ...]) -> None:
    connection.execute(sql.SQL("alter table {target} add constraint {name} primary key ({key})").format(
        target=target, name=sql.Identifier(f"{table}_pkey"), key=identifiers(key)))


def has_primary_key(connection, schema: str, table: str) -> bool:
    return connection.execute("select 1 from pg_constraint where conrelid = to_regclass(%s) and contype = 'p'",
                              (qualified_name(connection, schema, table),)).fetchone() is not None


def stream(source: psycopg.Connection, query: sql.Composable, target_cursor: psycopg.Cursor,
           target: sql.Composable, columns: sql.Composable, label: str) -> int:
    """Stream the rows of `query` on the source into `target` (columns) with COPY. Returns rows loaded.

    Both ends use COPY's binary format, which is safe because the stage or raw columns were created with
    exactly the source's types, and spares both servers turning every value into text and back.
    The source side talks to libpq directly: psycopg's row-by-row COPY iterator costs about 1 µs of
    Python per row, which made the loader a third slower than a `psql | psql` pipe. Reading rows with
    PQgetCopyData and handing the warehouse 1 MB blocks keeps Python out of the way.
    """
    pgconn = source.pgconn
    started = last_report = time.monotonic()
    copied = 0
    copy_out = sql.SQL("copy ({}) to stdout (format binary)").format(query)
    copy_in = sql.SQL("copy {} ({}) from stdin (format binary)").format(target, columns)
    with target_cursor.copy(copy_in) as into:
        pgconn.send_query(copy_out.as_bytes(source))
        while pgconn.flush():
            pass
        result = pgconn.get_result()
        if result.status != pq.ExecStatus.COPY_OUT:
            while pgconn.get_result() is not None:  # leave the connection idle for the caller
                pass
            raise errors.error_from_result(result, encoding=source.info.encoding)
        block = bytearray()
        read = pgconn.get_copy_data
        while True:
            size, row = read(0)
            if size <= 0:
                break
            block += row
            if len(block) >= COPY_BLOCK_BYTES:
                into.write(bytes(block))
                copied += len(block)
                block.clear()
                now = time.monotonic()
                if now - last_report > PROGRESS_EVERY_SECONDS:
                    last_report = now
                    log.info("%s: %.0f MB copied in %.0fs", label, copied / 1e6, now - started)
        failures = []
        while (result := pgconn.get_result()) is not None:  # drain, so the source connection stays usable
            if result.status != pq.ExecStatus.COMMAND_OK:
                failures.append(result)
        if failures:
            raise errors.error_from_result(failures[0], encoding=source.info.encoding)
        if block:
            into.write(bytes(block))
    return target_cursor.rowcount


def load_table(source_url: str, warehouse_url: str, table: SourceTable, *, source_name: str, raw_schema: str,
               run_id: str, overlap: timedelta = DEFAULT_OVERLAP, full_refresh: bool = False,
               detect_deletes: bool = True) -> LoadResult:
    """Bring `raw_schema.table` up to date with the source table. See the module docstring for the steps.

    `detect_deletes=False` skips step 4's key-set comparison on an incremental load (a full load always
    compares, since it must not lose track of rows the source no longer has).
    """
    result = LoadResult(source_name=source_name, table_name=table.name, run_id=run_id)
    clock = time.monotonic()
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse, raw_schema)
        result.started_at = warehouse.execute("select clock_timestamp()").fetchone()[0]
        try:
            with psycopg.connect(source_url, autocommit=True) as source:
                _load(source, warehouse, table, result, raw_schema=raw_schema, overlap=overlap,
                      full_refresh=full_refresh, detect_deletes=detect_deletes, clock=clock)
        except Exception as error:
            result.status, result.error = "failed", f"{type(error).__name__}: {error}"
            result.duration_seconds = time.monotonic() - clock
            with warehouse.transaction():
                record_run(warehouse, result)
            raise
    log.info("%s.%s: %s load, %s read, %s inserted, %s updated, %s deleted, %s quarantined in %.1fs", raw_schema,
             table.name, result.load_mode, result.rows_read, result.rows_inserted, result.rows_updated,
             result.rows_deleted, result.rows_quarantined, result.duration_seconds)
    return result


def column_definitions(columns: dict[str, str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.items())


def prepare_raw_table(warehouse: psycopg.Connection, table: SourceTable, columns: dict[str, SourceColumn],
                      result: LoadResult, raw_schema: str) -> dict[str, str]:
    """Create or extend the raw table to hold the source's columns; return the casts retyped columns need."""
    target = sql.Identifier(raw_schema, table.name)
    raw_columns = table_columns(warehouse, raw_schema, table.name)
    if not raw_columns:
        warehouse.execute(sql.SQL("create table {} ({})").format(
            target, column_definitions({c: column.raw_type for c, column in columns.items()}
                                       | BOOKKEEPING_COLUMNS)))
        raw_columns = table_columns(warehouse, raw_schema, table.name)
    for column, definition in ({c: column.raw_type for c, column in columns.items()} | BOOKKEEPING_COLUMNS).items():
        if column not in raw_columns:
            warehouse.execute(sql.SQL("alter table {} add column {} {}").format(
                target, sql.Identifier(column), sql.SQL(definition)))
            if column not in BOOKKEEPING_COLUMNS:
                result.added_columns.append(column)
                log.warning("%s.%s: new source column %s (%s) added to the raw table", raw_schema, table.name,
                            column, definition)
    # The dbt data tests on staging check the rows loaded since they last passed (`_loaded_at >= ...`); rows
    # are written in load order, so a BRIN index (a few pages for millions of rows) finds them.
    warehouse.execute(sql.SQL("create index if not exists {} on {} using brin ({})").format(
        sql.Identifier(f"{table.name}_loaded_at_brin"), target, sql.Identifier(LOADED_AT)))
    casts = {c: raw_columns[c] for c, column in columns.items()
             if c in raw_columns and raw_columns[c] != column.raw_type}
    result.retyped_columns = sorted(casts)
    for column, raw_type in casts.items():
        log.warning("%s.%s: column %s is %s in the source but %s in the raw table; values are cast and rows "
                    "that do not fit are quarantined", raw_schema, table.name, column, columns[column].raw_type,
                    raw_type)
    return casts


def prepare_api_stage(warehouse: psycopg.Connection, table: SourceTable, columns: dict[str, SourceColumn],
                      result: LoadResult, raw_schema: str) -> tuple[sql.Identifier, dict[str, str]]:
    """For an API source: the raw table ready (columns, key, recorded in ops.source_columns) and an
    all-text stage table its records are copied into. Returns the stage and the raw column types to merge
    with (the raw table's type where a column was retyped)."""
    casts = prepare_raw_table(warehouse, table, columns, result, raw_schema)
    if not has_primary_key(warehouse, raw_schema, table.name):
        ensure_primary_key(warehouse, sql.Identifier(raw_schema, table.name), table.name, table.primary_key)
    record_source_columns(warehouse, result.source_name, table.name, columns)
    stage = sql.Identifier(f"stage_{table.name}")
    warehouse.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(
        stage, column_definitions(dict.fromkeys(columns, "text"))))
    return stage, {column: source.raw_type for column, source in columns.items()} | casts


def choose_load_mode(warehouse: psycopg.Connection, table: SourceTable, result: LoadResult, raw_schema: str, *,
                     overlap: timedelta, full_refresh: bool) -> tuple[datetime | None, bool]:
    """Full when asked, on the first load, or when the raw table is empty; else incremental from the
    watermark minus the overlap. Sets the result's load mode and lower bound; returns (watermark, full)."""
    watermark = read_watermark(warehouse, result.source_name, table.name)
    raw_has_rows = warehouse.execute(sql.SQL("select exists (select from {})").format(
        sql.Identifier(raw_schema, table.name))).fetchone()[0]
    full = full_refresh or watermark is None or not raw_has_rows
    result.load_mode = "full" if full else "incremental"
    result.watermark_from = None if full else watermark - overlap
    return watermark, full


def quarantine_and_merge(warehouse: psycopg.Connection, stage: sql.Composable, table: SourceTable,
                         types: dict[str, str], result: LoadResult, raw_schema: str) -> tuple[int, int]:
    """Set aside the stage's rows that cannot be loaded (null or duplicate key, a value that does not fit
    its column), then merge the rest into the raw table. Returns (inserted, updated)."""
    label = f"{raw_schema}.{table.name}"
    labels = {"source_name": result.source_name, "table_name": table.name, "run_id": result.run_id}
    result.rows_quarantined += quarantine_null_keys(warehouse, stage, table.primary_key, **labels)
    for column, raw_type in types.items():
        if raw_type != "text":
            result.rows_quarantined += quarantine_bad_values(warehouse, stage, column, raw_type, label, **labels)
    result.rows_quarantined += quarantine_duplicate_keys(warehouse, stage, table.primary_key,
                                                         table.watermark_column, **labels)
    return merge_into(warehouse, stage, sql.Identifier(raw_schema, table.name), list(types), table.primary_key,
                      types, version_column=table.watermark_column)


def record_source_columns(warehouse: psycopg.Connection, source_name: str, table: str,
                          columns: dict[str, SourceColumn]) -> None:
    warehouse.execute("delete from ops.source_columns where source_name = %s and table_name = %s",
                      (source_name, table))
    with warehouse.cursor().copy("copy ops.source_columns (source_name, table_name, column_name, ordinal, "
                                 "source_type, raw_type, is_required) from stdin") as copy:
        for ordinal, (name, column) in enumerate(columns.items(), start=1):
            copy.write_row((source_name, table, name, ordinal, column.source_type, column.raw_type,
                            column.is_required))


def _load(source: psycopg.Connection, warehouse: psycopg.Connection, table: SourceTable, result: LoadResult, *,
          raw_schema: str, overlap: timedelta, full_refresh: bool, detect_deletes: bool, clock: float) -> None:
    # A repeatable-read snapshot: the watermark's upper bound, the rows copied and the key set agree.
    source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    source.read_only = True
    with source.transaction(), warehouse.transaction():
        columns = source_columns(source, table)
        if not columns:
            raise ExtractError(f"source table {table.source_schema}.{table.name} does not exist (or is not "
                               f"visible to the connection's user); check the source connection or drop the "
                               f"table from the extract list")
        missing = [c for c in (*table.primary_key, table.watermark_column) if c not in columns]
        if missing:
            raise ExtractError(f"source table {table.name} has no column(s) {', '.join(missing)}, which the "
                               f"extract list declares as its key / watermark; update the table's declaration")
        target = sql.Identifier(raw_schema, table.name)
        label = f"{raw_schema}.{table.name}"
        labels = {"source_name": result.source_name, "table_name": table.name, "run_id": result.run_id}
        names = list(columns)
        column_list = identifiers(names)
        # Types the warehouse may not have are read as their base type or text (see source_columns).
        select_list = sql.SQL(", ").join(
            sql.SQL("{c}::{t} as {c}").format(c=sql.Identifier(c), t=sql.SQL(column.raw_type))
            if column.raw_type != column.source_type else sql.Identifier(c) for c, column in columns.items())
        source_relation = sql.Identifier(table.source_schema, table.name)
        raw_types = {c: column.raw_type for c, column in columns.items()}

        casts = prepare_raw_table(warehouse, table, columns, result, raw_schema)
        raw_column_names = list(table_columns(warehouse, raw_schema, table.name))
        record_source_columns(warehouse, result.source_name, table.name, columns)
        watermark = read_watermark(warehouse, result.source_name, table.name)
        # Never past the source's own clock: a row stamped in the future must not hide later changes.
        upper = source.execute(sql.SQL("select least(max({}), now()) from {}").format(
            sql.Identifier(table.watermark_column), source_relation)).fetchone()[0]
        raw_has_rows = warehouse.execute(sql.SQL("select exists (select from {})").format(target)).fetchone()[0]
        if watermark is not None and not raw_has_rows and not full_refresh:
            log.warning("%s is empty but a watermark (%s) exists: loading in full so no history is skipped",
                        label, watermark)
        full = full_refresh or watermark is None or not raw_has_rows
        result.load_mode = "full" if full else "incremental"
        result.watermark_from = None if full else watermark - overlap
        result.watermark_to = upper if upper is not None else watermark

        source_keys = sql.Identifier(f"source_keys_{table.name}")
        key_types = {c: raw_types[c] for c in table.primary_key}

        def stream_source_keys() -> None:
            warehouse.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(
                source_keys, column_definitions(key_types)))
            stream(source, sql.SQL("select {} from {}").format(
                sql.SQL(", ").join(sql.SQL("{c}::{t}").format(c=sql.Identifier(c), t=sql.SQL(t))
                                   for c, t in key_types.items()), source_relation),
                warehouse.cursor(), source_keys, identifiers(table.primary_key), f"{label} keys")
            warehouse.execute(sql.SQL("analyze {}").format(source_keys))

        if full and raw_has_rows:  # the reload must not lose deleted rows' trace, nor rows from CSV files
            stream_source_keys()
            result.rows_deleted = set_aside_rows_to_keep(warehouse, target, table.primary_key, source_keys)

        if full and not casts:
            # Straight into the raw table: no index to maintain while copying, key rebuilt afterwards.
            warehouse.execute(sql.SQL("alter table {} drop constraint if exists {}").format(
                target, sql.Identifier(f"{table.name}_pkey")))
            warehouse.execute(sql.SQL("truncate {}").format(target))
            everything = sql.SQL("select {} from {}").format(select_list, source_relation)
            result.rows_read = stream(source, everything, warehouse.cursor(), target, column_list, label)
            try:
                with warehouse.transaction():
                    ensure_primary_key(warehouse, target, table.name, table.primary_key)
            except (errors.UniqueViolation, errors.NotNullViolation):
                result.rows_quarantined += quarantine_null_keys(warehouse, target, table.primary_key, **labels)
                result.rows_quarantined += quarantine_duplicate_keys(
                    warehouse, target, table.primary_key, table.watermark_column, **labels)
                ensure_primary_key(warehouse, target, table.name, table.primary_key)
            result.rows_inserted = result.rows_read - result.rows_quarantined
        else:
            stage = sql.Identifier(f"stage_{table.name}")
            warehouse.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(
                stage, column_definitions(raw_types)))
            query = sql.SQL("select {} from {}").format(select_list, source_relation)
            if not full:
                query += sql.SQL(" where {} >= {}").format(sql.Identifier(table.watermark_column),
                                                           sql.Literal(result.watermark_from))
            result.rows_read = stream(source, query, warehouse.cursor(), stage, column_list, label)
            key_enforced = source_enforces_key(source, table)
            if not key_enforced:
                result.rows_quarantined += quarantine_null_keys(warehouse, stage, table.primary_key, **labels)
            for column, raw_type in casts.items():
                result.rows_quarantined += quarantine_bad_values(
                    warehouse, stage, column, raw_type, label, **labels)
            if not key_enforced:
                result.rows_quarantined += quarantine_duplicate_keys(
                    warehouse, stage, table.primary_key, table.watermark_column, **labels)
            if full and raw_has_rows:  # a row set aside this time keeps its last good version
                keep_rows_missing_from_stage(warehouse, target, stage, table.primary_key)
            if full:
                warehouse.execute(sql.SQL("truncate {}").format(target))
            if not has_primary_key(warehouse, raw_schema, table.name):
                ensure_primary_key(warehouse, target, table.name, table.primary_key)
            result.rows_inserted, result.rows_updated = merge_into(
                warehouse, stage, target, names, table.primary_key, casts, version_column=table.watermark_column)
            if not full and raw_has_rows and detect_deletes and key_sets_may_differ(
                    source, warehouse, table, target, key_enforced, result.source_name):
                stream_source_keys()
                result.rows_deleted = flag_deleted_rows(warehouse, target, table.primary_key, source_keys)
        if full and raw_has_rows:
            put_back_kept_rows(warehouse, target, table, raw_column_names)

        if full:
            # Fresh statistics now, not whenever autovacuum gets to it: without them the planner guesses,
            # and a dbt query over millions of freshly loaded rows was seen to take 12 minutes, not 0.4 s.
            warehouse.execute(sql.SQL("analyze {}").format(target))
        if result.rows_quarantined:
            log.warning("%s: %s row(s) quarantined; see ops.quarantine where last_seen_run_id = %r", label,
                        result.rows_quarantined, result.run_id)
        if result.rows_deleted:
            log.warning("%s: %s row(s) deleted in the source, flagged with %s", label, result.rows_deleted,
                        DELETED_AT)
        if upper is not None:
            save_watermark(warehouse, result.source_name, table.name, upper, reset=full)
        result.status = "succeeded"
        result.duration_seconds = time.monotonic() - clock
        record_run(warehouse, result)


def read_watermark(warehouse: psycopg.Connection, source_name: str, table_name: str) -> datetime | None:
    row = warehouse.execute("select watermark from ops.extract_watermarks where source_name = %s and table_name = %s",
                            (source_name, table_name)).fetchone()
    return row[0] if row else None


def save_watermark(warehouse: psycopg.Connection, source_name: str, table_name: str, watermark: datetime, *,
                   reset: bool) -> None:
    """An increment only moves the watermark forward; a full load (`reset`) sets it to what it saw."""
    warehouse.execute(
        """
        insert into ops.extract_watermarks (source_name, table_name, watermark) values (%s, %s, %s)
        on conflict (source_name, table_name) do update
        set watermark = case when %s then excluded.watermark
            else greatest(excluded.watermark, ops.extract_watermarks.watermark) end,
            updated_at = now()
        """,
        (source_name, table_name, watermark, reset))


def key_sets_may_differ(source: psycopg.Connection, warehouse: psycopg.Connection, table: SourceTable,
                        target: sql.Composable, key_enforced: bool, source_name: str) -> bool:
    """After an incremental merge: could the raw table's live rows and the source disagree on keys?

    Streaming and comparing every key costs about 2 s per million rows, so counts are compared first:
    the source's distinct keys against the raw rows not flagged deleted. Equal counts mean no deletes,
    unless they are offset by rows the loader never saw (commits later than the overlap), which a full
    refresh catches. Raw rows supplied only by CSV files make the counts differ, so such tables always
    get the full comparison. So do tables with rows in quarantine: a source row set aside never reaches
    raw, and would hide one deleted row from the counts.
    """
    if warehouse.execute("select exists (select from ops.quarantine where source_name = %s and table_name = %s)",
                         (source_name, table.name)).fetchone()[0]:
        return True
    key = identifiers(table.primary_key)
    relation = sql.Identifier(table.source_schema, table.name)
    count = sql.SQL("count(*)") if key_enforced else sql.SQL(
        "count(distinct ({key})) filter (where ({key}) is not null)").format(key=key)
    source_keys = source.execute(sql.SQL("select {} from {}").format(count, relation)).fetchone()[0]
    live_rows = warehouse.execute(sql.SQL("select count(*) from {} where {} is null").format(
        target, sql.Identifier(DELETED_AT))).fetchone()[0]
    return live_rows != source_keys


def unflag_seen_rows(warehouse: psycopg.Connection, target: sql.Composable, key: tuple[str, ...],
                     seen_keys: sql.Composable) -> None:
    """Rows flagged deleted whose key the source has again (undeleted, or flagged by mistake) are un-flagged."""
    warehouse.execute(sql.SQL("""
        update {target} as raw set {deleted_at} = null
        from {seen_keys} as seen_key
        where raw.{deleted_at} is not null and {matches}
    """).format(target=target, deleted_at=sql.Identifier(DELETED_AT), seen_keys=seen_keys,
                matches=key_matches("raw", "seen_key", key)))


def seen_keys(warehouse: psycopg.Connection, stage: sql.Composable, table: SourceTable,
              key_types: dict[str, str]) -> sql.Identifier:
    """A temporary table of the keys of every record read into `stage`, taken before quarantine.

    A record set aside for a bad value still exists in the source: deletes are judged against this key
    set, never against what was left to merge. Keys that are not valid values of their type cannot match
    a raw row and are left out.
    """
    keys = sql.Identifier(f"seen_keys_{table.name}")
    valid = sql.SQL(" and ").join(sql.SQL("pg_input_is_valid({c}::text, {t})").format(
        c=sql.Identifier(c), t=sql.Literal(key_types[c])) for c in table.primary_key)
    warehouse.execute(sql.SQL("""
        create temporary table {keys} on commit drop as
        select distinct {casts} from {stage} where {valid}
    """).format(keys=keys, stage=stage, valid=valid, casts=sql.SQL(", ").join(
        sql.SQL("{c}::text::{t} as {c}").format(c=sql.Identifier(c), t=sql.SQL(key_types[c]))
        for c in table.primary_key)))
    return keys


def flag_deleted_rows(warehouse: psycopg.Connection, target: sql.Composable, key: tuple[str, ...],
                      source_keys: sql.Composable) -> int:
    """Flag extracted rows whose key the source no longer has; un-flag rows whose key came back.

    Rows supplied by CSV files are left alone: their keys need not exist in the source.
    Returns how many rows were newly flagged.
    """
    # Un-flag first: rows flagged by earlier runs have statistics; rows flagged a moment ago in this
    # transaction do not, and a planner that thinks none are flagged picks a nested loop over the key set
    # (seen taking 11 minutes after a source lost a million rows). The join lets it hash the key set.
    unflag_seen_rows(warehouse, target, key, source_keys)
    deleted = warehouse.execute(sql.SQL("""
        update {target} as raw set {deleted_at} = now()
        where raw.{deleted_at} is null and raw.{source_file} is null
            and not exists (select from {source_keys} as source_key where {matches})
    """).format(target=target, deleted_at=sql.Identifier(DELETED_AT), source_file=sql.Identifier(SOURCE_FILE),
                source_keys=source_keys, matches=key_matches("raw", "source_key", key))).rowcount
    return deleted


def set_aside_rows_to_keep(warehouse: psycopg.Connection, target: sql.Composable, key: tuple[str, ...],
                           source_keys: sql.Composable) -> int:
    """Before a full reload truncates `target`: keep its CSV rows and the rows the source no longer has.

    The latter are flagged deleted (if not already). Returns how many rows were newly flagged.
    """
    warehouse.execute(sql.SQL("""
        create temporary table kept_rows on commit drop as
        select * from {target} as raw
        where raw.{source_file} is not null or raw.{deleted_at} is not null
            or not exists (select from {source_keys} as source_key where {matches})
    """).format(target=target, source_file=sql.Identifier(SOURCE_FILE), deleted_at=sql.Identifier(DELETED_AT),
                source_keys=source_keys, matches=key_matches("raw", "source_key", key)))
    return warehouse.execute(sql.SQL("""
        update kept_rows as kept set {deleted_at} = now()
        where kept.{deleted_at} is null and kept.{source_file} is null
            and not exists (select from {source_keys} as source_key where {matches})
    """).format(deleted_at=sql.Identifier(DELETED_AT), source_file=sql.Identifier(SOURCE_FILE),
                source_keys=source_keys, matches=key_matches("kept", "source_key", key))).rowcount


def keep_rows_missing_from_stage(warehouse: psycopg.Connection, target: sql.Composable, stage: sql.Composable,
                                 key: tuple[str, ...]) -> None:
    """During a full reload, after quarantine and before `target` is truncated: keep the raw rows the source
    still has but the stage no longer holds (their new version was quarantined), so that they come back as
    they were, live, instead of vanishing with the truncate. Call after set_aside_rows_to_keep."""
    warehouse.execute(sql.SQL("""
        insert into kept_rows
        select raw.* from {target} as raw
        where raw.{deleted_at} is null and raw.{source_file} is null
            and not exists (select from kept_rows as kept where {kept_matches})
            and not exists (select from {stage} as staged where {stage_matches})
    """).format(target=target, stage=stage, deleted_at=sql.Identifier(DELETED_AT),
                source_file=sql.Identifier(SOURCE_FILE), kept_matches=key_matches("kept", "raw", key),
                stage_matches=key_matches("staged", "raw", key)))


def put_back_kept_rows(warehouse: psycopg.Connection, target: sql.Composable, table: SourceTable,
                       columns: list[str]) -> None:
    """After a full reload: rows the source no longer has come back flagged; a CSV row comes back unless
    the source now has a version at least as new (the same rule as every extract)."""
    non_key = [c for c in columns if c not in table.primary_key]
    warehouse.execute(sql.SQL("""
        insert into {target} as target ({columns})
        select {columns} from kept_rows
        on conflict ({key}) do update set {assignments}
        where excluded.{source_file} is not null and target.{version} < excluded.{version}
    """).format(target=target, columns=identifiers(columns), key=identifiers(table.primary_key),
                assignments=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
                                               for c in non_key),
                source_file=sql.Identifier(SOURCE_FILE), version=sql.Identifier(table.watermark_column)))


def record_run(connection: psycopg.Connection, result: LoadResult) -> None:
    """Write (or, for a re-run of the same run id, replace) the audit row of one table load."""
    connection.execute(
        """
        insert into ops.extract_runs (
            run_id, source_name, table_name, load_mode, status, rows_read, rows_inserted, rows_updated,
            rows_deleted, rows_quarantined, api_calls, watermark_from, watermark_to, added_columns,
            retyped_columns, started_at, finished_at, duration_seconds, error
        ) values (
            %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
            coalesce(%s, clock_timestamp()), clock_timestamp(), %s, %s
        )
        on conflict (run_id, source_name, table_name) do update set
            load_mode = excluded.load_mode, status = excluded.status, rows_read = excluded.rows_read,
            rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,
            rows_deleted = excluded.rows_deleted, rows_quarantined = excluded.rows_quarantined,
            api_calls = excluded.api_calls,
            watermark_from = excluded.watermark_from, watermark_to = excluded.watermark_to,
            added_columns = excluded.added_columns, retyped_columns = excluded.retyped_columns,
            started_at = excluded.started_at, finished_at = excluded.finished_at,
            duration_seconds = excluded.duration_seconds, error = excluded.error
        """,
        (result.run_id, result.source_name, result.table_name, result.load_mode, result.status, result.rows_read,
         result.rows_inserted, result.rows_updated, result.rows_deleted, result.rows_quarantined, result.api_calls,
         result.watermark_from, result.watermark_to, result.added_columns, result.retyped_columns,
         result.started_at, round(result.duration_seconds, 3), result.error))
