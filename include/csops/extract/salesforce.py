"""Copy Salesforce objects into the warehouse's `raw_salesforce` schema: incremental, deletes included.

One object is loaded like one Nexpro table, with the same ops tables (audit in `ops.extract_runs`,
watermarks, quarantine, `ops.source_columns`) and the same guarantees, all in one warehouse transaction:
1. `describe` the object. Every queryable field becomes a raw column (lower-cased API name, e.g.
   `nexpro_tenant_id__c`); a field added in Salesforce becomes a new raw column on the next run.
2. Read the watermark: the largest `SystemModstamp` loaded so far. Rows modified since the watermark
   minus the overlap are read with `queryAll`, which also returns deleted rows (`IsDeleted = true`) while
   they are in the recycle bin. No watermark, an empty raw table or a full refresh reads everything.
3. The rows are streamed page by page into a stage table: through the REST API (pages of up to 2,000),
   or through a Bulk API 2.0 query job when a `COUNT()` says there are more than `bulk_threshold` rows.
   Nothing but one page is held in memory. REST queries ask for `SystemModstamp` order; a Bulk query
   has no ORDER BY: Salesforce documents that ORDER BY disables PK chunking in Bulk API 2.0 and risks
   query timeouts, so its rows arrive in no particular order.
4. The stage is merged into raw on `id` (a row is rewritten only when a value changed). Rows Salesforce
   reports deleted get `_deleted_at`; an undeleted row is un-flagged. A full load also flags raw rows the
   org no longer returns at all (purged from the recycle bin), judged on the Ids of every row read,
   quarantined ones included: a row set aside is never taken for a purge. Rows whose values do not fit
   their raw column go to `ops.quarantine`.
5. API calls are counted (`ops.extract_runs.api_calls`) and the org's remaining daily budget is read from
   every answer's `Sforce-Limit-Info` header. Before a call would eat into the reserve, the load stops:
   what was read so far is merged, the audit row says `stopped` and why, and the next run resumes from
   the watermark: through REST (read in `SystemModstamp` order) it moves to the last row read. A Bulk
   read goes by watermark windows (`bulk_window`, 30 days by default: one job per window, the last one
   open-ended), since a job's rows come in no order: the watermark moves to the end of the last window
   read whole, and the next run starts there, so even an object too large for one day's budget is read
   to the end over several runs (merging is idempotent).
6. Transient errors (503, `UNABLE_TO_LOCK_ROW`, timeouts, dropped connections) are retried with
   exponential backoff; an expired session logs in again. A permanent error fails the load with a
   message naming the object and the fix, and a `failed` audit row.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import requests
from psycopg import sql
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from csops.extract.engine import (
    DEFAULT_OVERLAP,
    DELETED_AT,
    ExtractError,
    LoadResult,
    SourceColumn,
    SourceTable,
    choose_load_mode,
    ensure_schemas,
    identifiers,
    prepare_api_stage,
    quarantine_and_merge,
    record_run,
    save_watermark,
    seen_keys,
)
from csops.extract.salesforce_objects import RAW_SCHEMA, SOURCE_NAME

log = logging.getLogger(__name__)

WATERMARK_FIELD = "SystemModstamp"
DEFAULT_BULK_THRESHOLD = 10_000
DEFAULT_BULK_WINDOW = timedelta(days=30)  # a Bulk read is one job per window of SystemModstamp
DEFAULT_BUDGET_RESERVE = 0.2  # the share of the org's daily API budget the extract leaves to others
BULK_PAGE_RECORDS = 10_000
REQUEST_TIMEOUT_SECONDS = 120
# describe types with no single column value (compound fields are also readable through their parts).
UNLOADABLE_TYPES = {"address", "location", "base64", "anyType", "complexvalue"}
# Salesforce field type -> raw column type, spelled as Postgres reports it (format_type) so that an
# unchanged field never looks retyped. Every other type (ids, text, picklists) is text.
RAW_TYPES = {
    "boolean": "boolean", "date": "date", "datetime": "timestamp with time zone", "time": "time without time zone",
    "double": "numeric", "currency": "numeric", "percent": "numeric", "int": "bigint", "long": "bigint",
}
TRANSIENT_STATUSES = {500, 502, 503, 504}
TRANSIENT_ERROR_CODES = ("UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG")
LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class BudgetReserveReached(ExtractError):
    """The next API call would eat into the reserve of the org's daily budget."""


class CountingSession(requests.Session):
    """A requests session that counts the calls it makes and reads the org's API usage from each answer.

    Every call first checks the budget: when the org's remaining daily requests are down to the reserve,
    `BudgetReserveReached` is raised instead of calling. Calls without a timeout get one.
    """

    def __init__(self, reserve_share: float, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.reserve_share = reserve_share
        self.timeout = timeout
        self.calls = 0
        self.used: int | None = None
        self.limit: int | None = None

    @property
    def reserve(self) -> int | None:
        return None if self.limit is None else int(self.limit * self.reserve_share)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else self.limit - self.used

    def request(self, method, url, *args, **kwargs):
        if self.limit is not None and self.remaining <= self.reserve:
            raise BudgetReserveReached(
                f"stopped before spending the reserve of the org's daily API budget: {self.used:,} of "
                f"{self.limit:,} requests used, {self.reserve:,} ({self.reserve_share:.0%}) kept for other "
                f"integrations. The load resumes from its watermark on the next run; to go on today, lower "
                f"the reserve (CS_SALESFORCE_API_RESERVE) or raise the org's limit")
        kwargs.setdefault("timeout", self.timeout)
        response = super().request(method, url, *args, **kwargs)
        self.calls += 1
        usage = LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if usage:
            self.used, self.limit = int(usage.group(1)), int(usage.group(2))
        return response


def is_transient(error: BaseException) -> bool:
    """Errors worth another try: the org is busy or briefly unreachable."""
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(error, SalesforceError):
        return error.status in TRANSIENT_STATUSES or any(code in str(error.content) for code in TRANSIENT_ERROR_CODES)
    return False


def error_codes(error: SalesforceError) -> str:
    """`CODE: message` from Salesforce's `[{"message", "errorCode"}]` body, or the raw body."""
    content = error.content
    if isinstance(content, list):
        return "; ".join(f"{item.get('errorCode')}: {item.get('message')}" for item in content
                         if isinstance(item, dict)) or str(content)
    return str(content)


def explain(error: Exception, object_name: str) -> ExtractError:
    """A permanent Salesforce error as an ExtractError naming the object and the fix."""
    if isinstance(error, SalesforceAuthenticationFailed):
        # simple-salesforce keeps Salesforce's own words in auth_message (its `message` is an unformatted template)
        reason = (getattr(error, "auth_message", "") or "authentication failed").strip().rstrip(".")
        code = str(error.code or "login failed").removeprefix("sf:")
        if not reason.startswith(code):
            reason = f"{code}: {reason}"
        return ExtractError(f"{reason} — check the username, password and security token of the salesforce_default "
                            f"connection")
    if isinstance(error, SalesforceError):
        detail = error_codes(error)
        if isinstance(error, SalesforceMalformedRequest) and "INVALID_TYPE" in detail:
            fix = (f"the org has no object {object_name}, or the connection's user cannot read it; grant access "
                   f"or remove it from SALESFORCE_OBJECTS")
        elif isinstance(error, SalesforceMalformedRequest) and "INVALID_FIELD" in detail:
            fix = (f"a field of {object_name} is no longer queryable by the connection's user; check its "
                   f"field-level security")
        elif isinstance(error, SalesforceRefusedRequest) and "REQUEST_LIMIT_EXCEEDED" in detail:
            fix = "the org's daily API budget is spent; the load resumes from its watermark once it resets"
        elif isinstance(error, SalesforceResourceNotFound):
            fix = f"the org does not expose {object_name} to the connection's user"
        else:
            fix = f"Salesforce refused the request (HTTP {error.status}); see the message above"
        return ExtractError(f"Salesforce {object_name}: {detail} — {fix}")
    return ExtractError(f"Salesforce {object_name}: {type(error).__name__}: {error}")


@dataclass
class SalesforceApi:
    """The Salesforce calls the extract makes: retried when transient, re-logged-in when the session expires."""

    connect: Callable[[requests.Session], Salesforce]
    session: requests.Session  # a CountingSession, for the budget guard and the call count
    retry_wait_seconds: float = 1.0
    attempts: int = 5
    client: Salesforce | None = None  # a client logged in already; else `connect` logs in at once

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = self.connect(self.session)

    def call(self, operation: Callable[[Salesforce], object]):
        """Run `operation(client)`: retry transient errors with backoff; after an expired session, log in again."""
        for attempt in Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(self.attempts),
                                wait=wait_exponential(multiplier=self.retry_wait_seconds, max=60), reraise=True,
                                before_sleep=lambda state: log.warning(
                                    "Salesforce: %s; retrying (attempt %s of %s)", state.outcome.exception(),
                                    state.attempt_number + 1, self.attempts)):
            with attempt:
                return self.once(operation)

    def once(self, operation: Callable[[Salesforce], object]):
        """Run `operation(client)` once; after an expired session (401 INVALID_SESSION_ID), log in and run it again."""
        try:
            return operation(self.client)
        except SalesforceExpiredSession:
            log.warning("Salesforce session expired; logging in again")
            self.client = self.connect(self.session)
            return operation(self.client)

    def limits(self) -> None:
        """Ask for the org's limits once, so the budget is known before the first real call."""
        self.call(lambda client: client.limits())

    def describe(self, object_name: str) -> dict:
        return self.call(lambda client: getattr(client, object_name).describe())

    def earliest(self, object_name: str) -> datetime | None:
        """The oldest SystemModstamp of the object (deleted rows included), or None when it has no rows."""
        records = self.call(lambda client: client.query(
            f"SELECT {WATERMARK_FIELD} FROM {object_name} ORDER BY {WATERMARK_FIELD} LIMIT 1",
            include_deleted=True))["records"]
        return datetime.fromisoformat(records[0][WATERMARK_FIELD]) if records else None

    def count(self, soql: str) -> int:
        # `query`, not `query_all`: the latter recounts totalSize from the records, and COUNT() returns none.
        return self.call(lambda client: client.query(soql, include_deleted=True))["totalSize"]

    def rest_pages(self, soql: str) -> Iterator[list[dict]]:
        """The records of `soql` (deleted ones included), a page at a time, through the REST API."""
        page = self.call(lambda client: client.query(soql, include_deleted=True))
        while True:
            yield page["records"]
            if page.get("done", True):
                return
            next_url = page["nextRecordsUrl"]
            page = self.call(lambda client, url=next_url: client.query_more(url, identifier_is_url=True,
                                                                            include_deleted=True))

    def bulk_pages(self, object_name: str, soql: str, poll_seconds: float) -> Iterator[str]:
        """The records of `soql` (deleted ones included) as CSV pages from a Bulk API 2.0 `queryAll` job.

        The job's steps are made one by one (simple-salesforce's `query_all` generator does the same), so
        each call is retried on its own and a transient error does not restart the job.
        """
        jobs = lambda client: getattr(client.bulk2, object_name)._client  # noqa: E731
        job = self.call(lambda client: jobs(client).create_job(Operation.query_all, soql))
        self.call(lambda client: jobs(client).wait_for_job(job["id"], True, poll_seconds))
        locator = ""
        while True:
            page = self.call(lambda client, at=locator: jobs(client).get_query_results(job["id"], at,
                                                                                       BULK_PAGE_RECORDS))
            yield page["records"]
            locator = page["locator"]
            if not locator:
                return


def describe_columns(description: dict) -> tuple[dict[str, str], dict[str, SourceColumn]]:
    """(raw column -> API field name, raw column -> type) for the loadable fields of a describe result."""
    fields = {}
    columns = {}
    for described in description["fields"]:
        if described["type"] in UNLOADABLE_TYPES:
            continue
        column = described["name"].lower()
        fields[column] = described["name"]
        columns[column] = SourceColumn(source_type=described["type"],
                                       raw_type=RAW_TYPES.get(described["type"], "text"),
                                       is_required=not described["nillable"])
    for required in ("id", WATERMARK_FIELD.lower(), "isdeleted"):
        if required not in columns:
            raise ExtractError(f"Salesforce {description['name']}: describe shows no {required} field; the extract "
                               f"needs Id, SystemModstamp and IsDeleted on every object")
    return fields, columns


def soql_for(object_name: str, fields: list[str], since: datetime | None, *, until: datetime | None = None,
             count: bool = False, ordered: bool = True) -> str:
    """The extract's SOQL: every field, rows modified since `since` (and before `until`), in SystemModstamp
    order when `ordered` (never for a Bulk job: ORDER BY disables its PK chunking)."""
    conditions = [f"{WATERMARK_FIELD} {operator} {moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
                  for operator, moment in ((">=", since), ("<", until)) if moment is not None]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    if count:
        return f"SELECT COUNT() FROM {object_name}{where}"
    order = f" ORDER BY {WATERMARK_FIELD}, Id" if ordered else ""
    return f"SELECT {', '.join(fields)} FROM {object_name}{where}{order}"


def bulk_windows(start: datetime | None, now: datetime,
                 window: timedelta) -> list[tuple[datetime | None, datetime | None]]:
    """The (from, before) windows of SystemModstamp a Bulk read goes through: from `start` (None: from the
    beginning) in steps of `window`, the last one open-ended (rows modified during the read are in it)."""
    if start is None:
        return [(None, None)]
    bounds = [start]
    while bounds[-1] + window < now:
        bounds.append(bounds[-1] + window)
    return [(low, high) for low, high in zip(bounds, [*bounds[1:], None], strict=True)]


class BulkRead:
    """The rows of a Bulk read, window by window; `read_until` is the end of the last window read whole."""

    def __init__(self, api: SalesforceApi, object_name: str, fields: list[str],
                 windows: list[tuple[datetime | None, datetime | None]], poll_seconds: float) -> None:
        self.api, self.object_name, self.fields = api, object_name, fields
        self.windows, self.poll_seconds = windows, poll_seconds
        self.read_until: datetime | None = None

    def __iter__(self) -> Iterator[list]:
        for low, high in self.windows:
            soql = soql_for(self.object_name, self.fields, low, until=high, ordered=False)
            yield from bulk_rows(self.api.bulk_pages(self.object_name, soql, self.poll_seconds), self.fields)
            self.read_until = high


def as_text(value) -> str | None:
    """A JSON value as the text the stage holds (the same text a Bulk CSV carries)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rest_rows(pages: Iterator[list[dict]], fields: list[str]) -> Iterator[list]:
    for records in pages:
        for record in records:
            yield [as_text(record.get(name)) for name in fields]


def bulk_rows(pages: Iterator[str], fields: list[str]) -> Iterator[list]:
    for page in pages:
        reader = csv.DictReader(io.StringIO(page))
        lowered = {name.lower(): name for name in reader.fieldnames or ()}
        missing = [name for name in fields if name.lower() not in lowered]
        if missing:
            raise ExtractError(f"the Bulk API answer lacks the column(s) {', '.join(missing)}")
        for record in reader:
            yield [record[lowered[name.lower()]] or None for name in fields]


def log_in_and_load(connect: Callable[[requests.Session], Salesforce], session: requests.Session, warehouse_url: str,
                    object_name: str, *, run_id: str, **options) -> LoadResult:
    """Log in, then `load_object`. A login that fails (a wrong password, an unreachable org) is the object's
    failed load: its `ops.extract_runs` row holds the error, so the run's summary names the object and why."""
    try:
        api = SalesforceApi(connect, session)
    except Exception as error:
        failure = error if isinstance(error, ExtractError) else explain(error, object_name)
        record_failed_start(warehouse_url, object_name, run_id, str(failure))
        if failure is error:
            raise
        raise failure from error
    return load_object(api, warehouse_url, object_name, run_id=run_id, **options)


def record_failed_start(warehouse_url: str, object_name: str, run_id: str, error: str) -> None:
    """The audit row of a load that failed before it could read anything (the login)."""
    result = LoadResult(source_name=SOURCE_NAME, table_name=object_name.lower(), run_id=run_id, status="failed",
                        error=error)
    log.error("%s.%s: %s", RAW_SCHEMA, result.table_name, error)
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse, RAW_SCHEMA)
        result.started_at = warehouse.execute("select clock_timestamp()").fetchone()[0]
        with warehouse.transaction():
            record_run(warehouse, result)


def load_object(api: SalesforceApi, warehouse_url: str, object_name: str, *, run_id: str,
                overlap: timedelta = DEFAULT_OVERLAP, full_refresh: bool = False,
                bulk_threshold: int = DEFAULT_BULK_THRESHOLD, bulk_poll_seconds: float = 2.0,
                bulk_window: timedelta = DEFAULT_BULK_WINDOW) -> LoadResult:
    """Bring `raw_salesforce.<object>` up to date with the org. See the module docstring for the steps."""
    table = SourceTable(object_name.lower(), ("id",), watermark_column=WATERMARK_FIELD.lower())
    result = LoadResult(source_name=SOURCE_NAME, table_name=table.name, run_id=run_id)
    clock = time.monotonic()
    calls_before = api.session.calls
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse, RAW_SCHEMA)
        result.started_at = warehouse.execute("select clock_timestamp()").fetchone()[0]
        try:
            with warehouse.transaction():
                _load(api, warehouse, object_name, table, result, overlap=overlap, full_refresh=full_refresh,
                      bulk_threshold=bulk_threshold, bulk_poll_seconds=bulk_poll_seconds, bulk_window=bulk_window)
                result.api_calls = api.session.calls - calls_before
                result.duration_seconds = time.monotonic() - clock
                record_run(warehouse, result)
        except BudgetReserveReached as reached:  # before a single row was read: nothing to keep
            result.status, result.error = "stopped", f"Salesforce {object_name}: {reached}"
            result.api_calls = api.session.calls - calls_before
            result.duration_seconds = time.monotonic() - clock
            log.warning("%s.%s: %s", RAW_SCHEMA, table.name, result.error)
            with warehouse.transaction():
                record_run(warehouse, result)
        except Exception as error:
            failure = error if isinstance(error, ExtractError) else explain(error, object_name)
            result.status, result.error = "failed", str(failure)
            result.api_calls = api.session.calls - calls_before
            result.duration_seconds = time.monotonic() - clock
            with warehouse.transaction():
                record_run(warehouse, result)
            if failure is error:
                raise
            raise failure from error
    log.info("%s.%s: %s load, %s read, %s inserted, %s updated, %s deleted, %s quarantined, %s API calls "
             "in %.1fs (%s)", RAW_SCHEMA, table.name, result.load_mode, result.rows_read, result.rows_inserted,
             result.rows_updated, result.rows_deleted, result.rows_quarantined, result.api_calls,
             result.duration_seconds, result.status)
    return result


def _load(api: SalesforceApi, warehouse: psycopg.Connection, object_name: str, table: SourceTable,
          result: LoadResult, *, overlap: timedelta, full_refresh: bool, bulk_threshold: int,
          bulk_poll_seconds: float, bulk_window: timedelta) -> None:
    label = f"{RAW_SCHEMA}.{table.name}"
    target = sql.Identifier(RAW_SCHEMA, table.name)
    if api.session.limit is None:
        api.limits()
    field_names, columns = describe_columns(api.describe(object_name))
    stage, types = prepare_api_stage(warehouse, table, columns, result, RAW_SCHEMA)
    watermark, full = choose_load_mode(warehouse, table, result, RAW_SCHEMA, overlap=overlap,
                                       full_refresh=full_refresh)
    names = list(columns)
    fields = [field_names[column] for column in names]
    expected = api.count(soql_for(object_name, fields, result.watermark_from, count=True))
    bulk = expected > bulk_threshold
    if bulk:
        log.info("%s: %s rows to read, above %s: Bulk API 2.0 query", label, f"{expected:,}", f"{bulk_threshold:,}")
        start = result.watermark_from or api.earliest(object_name)
        rows = BulkRead(api, object_name, fields, bulk_windows(start, datetime.now(UTC), bulk_window),
                        bulk_poll_seconds)
    else:
        rows = rest_rows(api.rest_pages(soql_for(object_name, fields, result.watermark_from)), fields)
    stopped = None
    with warehouse.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(stage, identifiers(names))) as copy:
        try:
            for row in rows:
                copy.write_row(row)
                result.rows_read += 1
                if result.rows_read % 50_000 == 0:
                    log.info("%s: %s of %s rows read", label, f"{result.rows_read:,}", f"{expected:,}")
        except BudgetReserveReached as reached:
            stopped = reached
    read_ids = seen_keys(warehouse, stage, table, types)
    result.rows_inserted, result.rows_updated = quarantine_and_merge(warehouse, stage, table, types, result,
                                                                     RAW_SCHEMA)
    result.rows_deleted = apply_deletions(warehouse, target, stage,
                                          read_ids if full and stopped is None else None)

    if result.rows_quarantined:
        log.warning("%s: %s row(s) quarantined; see ops.quarantine where last_seen_run_id = %r", label,
                    result.rows_quarantined, result.run_id)
    seen_until = warehouse.execute(sql.SQL("select least(max({}::timestamptz), now()) from {}").format(
        sql.Identifier(table.watermark_column), stage)).fetchone()[0]
    if bulk and stopped is not None:
        # rows in no order: only the end of the last window read whole is a watermark
        seen_until = rows.read_until
    result.watermark_to = seen_until or watermark
    if seen_until is not None:
        save_watermark(warehouse, SOURCE_NAME, table.name, seen_until, reset=full and stopped is None)
    if stopped is not None:
        result.status, result.error = "stopped", f"Salesforce {object_name}: {stopped}"
        log.warning("%s: %s", label, result.error)
    else:
        result.status = "succeeded"
    if full:
        warehouse.execute(sql.SQL("analyze {}").format(target))


def apply_deletions(warehouse: psycopg.Connection, target: sql.Composable, stage: sql.Composable,
                    read_ids: sql.Composable | None) -> int:
    """Flag rows Salesforce reported deleted; un-flag undeleted ones. Returns how many were newly flagged.

    `read_ids` (the Ids of a complete full load, quarantined rows included): raw rows the org no longer
    returns at all, even with `queryAll`, were purged from its recycle bin; they are flagged too.
    """
    deleted_at = sql.Identifier(DELETED_AT)
    flagged = warehouse.execute(sql.SQL("""
        update {target} as raw set {deleted_at} = now()
        from {stage} as seen
        where seen.id = raw.id and seen.isdeleted = 'true' and raw.{deleted_at} is null
    """).format(target=target, stage=stage, deleted_at=deleted_at)).rowcount
    warehouse.execute(sql.SQL("""
        update {target} as raw set {deleted_at} = null
        from {stage} as seen
        where seen.id = raw.id and seen.isdeleted = 'false' and raw.{deleted_at} is not null
    """).format(target=target, stage=stage, deleted_at=deleted_at))
    if read_ids is not None:
        flagged += warehouse.execute(sql.SQL("""
            update {target} as raw set {deleted_at} = now()
            where raw.{deleted_at} is null and not exists (select from {read_ids} as seen where seen.id = raw.id)
        """).format(target=target, read_ids=read_ids, deleted_at=deleted_at)).rowcount
    return flagged


def connect_with_hook(conn_id: str) -> Callable[[requests.Session], Salesforce]:
    """A login function over an Airflow connection (`SalesforceHook`): a fresh login on every call."""

    def connect(session: requests.Session) -> Salesforce:
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        hook = SalesforceHook(salesforce_conn_id=conn_id, session=session)
        # simple-salesforce ignores its `proxies` argument when given a session: the session carries them.
        extras = hook.get_connection(conn_id).extra_dejson
        proxies = extras.get("proxies") or extras.get("extra__salesforce__proxies")
        if proxies:
            session.proxies.update(json.loads(proxies) if isinstance(proxies, str) else proxies)
        try:
            return hook.get_conn()
        except SalesforceAuthenticationFailed as failed:
            raise explain(failed, "login") from failed

    return connect

