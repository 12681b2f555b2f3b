"""Copy board (billing) clients, projects and invoices into the warehouse's `raw_board` schema.

board's REST API is rate limited: at most 3 requests a second and a daily budget per API key. The
extract is built around that:
- a client-side limiter spaces requests so no 1-second window holds more than 3; a `429 Too Many
  Requests` (another client sharing the key) is answered by waiting and trying again, so a burst never
  fails the run;
- `429 Limit Exceeded` (the daily budget) stops the load cleanly: the pages already read are merged, the
  watermark does not move, the audit row says `stopped` and why, and the next run re-reads from the same
  watermark (merging is idempotent, so nothing is counted twice);
- a 5xx answer or a dropped connection is tried again with exponential backoff, each try paced like any
  call; past the last try the load fails naming the call, and leaves the warehouse as it was;
- pages of 100 (the most board allows), read until `X-Total-Count` is reached, or until an empty page when
  board sends no total.

Deletes. board lists only live records, so a record missing from a complete read was deleted there. A
read is complete when it saw at least as many records as board's last `X-Total-Count`: paging is by
offset, so a record deleted while the pages are read shifts a live one onto a page already read, and a
read that fell short of the total (or got no total) flags nothing. Each unseen id is then asked for on
its own (clients and projects by id; invoices, which board cannot read one by one, through their
project's invoice list) and flagged `_deleted_at` only when board no longer has it. A complete read
happens on a full load and on a reconciliation: an incremental load followed by a read of every id
(`response_group=small`), when the last complete read is older than `reconcile_every` (a week by
default). Every load un-flags the rows it reads again, quarantined ones included: a record set aside for
a bad value still exists in board.

One resource is loaded like one Nexpro table, with the same ops tables: incremental by `updated_at` with
the overlap (`updated_at_gteq`), merged on `id` (a row is rewritten only when a value changed), the
watermark and the audit row committed with the data. Each record lands as typed columns (board's field
names; `client_id` is the nested `client.id`) plus `_raw`, the record exactly as board sent it (`jsonb`),
so a field board adds is kept before anyone maps it. Projects are read with `include_lost_flg=1` (board
leaves 失注 out otherwise), and clients and projects with `include_archive_flg=1`: an archived client or
project is history, not a delete, and a list without it would have the loader flag it deleted. Invoice
line items (`invoice.details`, read with `response_group=invoice`) are their own table,
`raw_board.invoice_details`, keyed by invoice and line number (`no`: board's lines have no id of their
own); a line removed from a re-read invoice is flagged `_deleted_at`.
Values that do not fit their column (an amount that is not a number) go to `ops.quarantine`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import requests
from psycopg import sql
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from csops.extract.board_resources import BOARD_RESOURCES, RAW_SCHEMA, SOURCE_NAME
from csops.extract.engine import (
    DEFAULT_OVERLAP,
    DELETED_AT,
    SOURCE_FILE,
    ExtractError,
    LoadResult,
    SourceColumn,
    SourceTable,
    choose_load_mode,
    ensure_schemas,
    flag_deleted_rows,
    identifiers,
    prepare_api_stage,
    quarantine_and_merge,
    record_run,
    save_watermark,
    seen_keys,
    unflag_seen_rows,
)

log = logging.getLogger(__name__)

PER_PAGE = 100
REQUESTS_PER_SECOND = 3
TOO_MANY_REQUESTS_RETRIES = 10
TRANSIENT_STATUSES = {500, 502, 503, 504}
TRANSIENT_ATTEMPTS = 5
DEFAULT_RECONCILE_EVERY = timedelta(days=7)
RAW_RECORD = "_raw"

# The typed columns of each resource (board's field names), as the warehouse stores them. Amounts: `total`
# excludes tax, `tax` is the consumption tax.
COLUMNS: dict[str, dict[str, str]] = {
    "clients": {"id": "bigint", "name": "text", "name_disp": "text", "custom_no": "text", "title": "text",
                "zip": "text", "pref": "text", "address1": "text", "address2": "text", "tel": "text", "fax": "text",
                "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone"},
    "projects": {"id": "bigint", "client_id": "bigint", "project_no": "bigint", "name": "text",
                 "order_status": "integer", "order_status_name": "text", "invoice_timing_kbn": "integer",
                 "invoice_timing_kbn_name": "text", "estimate_date": "date", "ordered_date": "date",
                 "contract_start_date": "date", "contract_end_date": "date",
                 "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone"},
    "invoices": {"id": "bigint", "project_id": "bigint", "project_no": "bigint", "name": "text", "client_id": "bigint",
                 "invoice_no": "text", "invoice_date": "date", "payment_limit_date": "date", "paid_date": "date",
                 "invoice_status": "integer", "invoice_status_name": "text", "order_status": "integer",
                 "service_period_start": "date", "service_period_end": "date", "total": "numeric", "tax": "numeric",
                 "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone"},
}
DETAIL_COLUMNS = {"invoice_id": "bigint", "no": "integer", "description": "text", "quantity": "numeric",
                  "unit": "text", "unit_price": "numeric", "price": "numeric", "tax_rate": "numeric",
                  "invoice_updated_at": "timestamp with time zone"}
DETAIL_KEY = ("invoice_id", "no")
# Columns read from a nested object of the record (column -> path).
NESTED = {"client_id": ("client", "id")}
# The query parameters of each resource's full read.
READ_PARAMETERS = {"clients": [("response_group", "large"), ("include_archive_flg", "1")],
                   "projects": [("response_group", "large"), ("include_lost_flg", "1"), ("include_archive_flg", "1")],
                   "invoices": [("response_group", "invoice")]}


class DailyLimitReached(ExtractError):
    """board answered `429 Limit Exceeded`: the API key's daily budget is spent."""


class BoardUnavailable(ExtractError):
    """board answered 5xx, or the connection dropped: worth another try."""


@dataclass
class Listing:
    """What one read of a list saw: how many records, and board's last `X-Total-Count` (None if it sent none)."""

    read: int = 0
    total: int | None = None

    @property
    def complete(self) -> bool:
        """True when no live record can have been missed for good: at least the total was read."""
        return self.total is not None and self.read >= self.total


@dataclass
class BoardClient:
    """board API v1 over HTTP: both credentials on every call, paced under the per-second limit."""

    base_url: str
    api_key: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)
    requests_per_second: int = REQUESTS_PER_SECOND
    timeout: float = 60.0
    attempts: int = TRANSIENT_ATTEMPTS
    retry_wait_seconds: float = 1.0
    calls: int = 0
    _sent: deque = field(default_factory=deque, repr=False)

    def _pace(self) -> None:
        """Wait until a request would be at most the `requests_per_second`th in the last second (plus a margin)."""
        window = 1.05
        while len(self._sent) >= self.requests_per_second:
            wait = window - (time.monotonic() - self._sent[0])
            if wait <= 0:
                self._sent.popleft()
            else:
                time.sleep(wait)
        self._sent.append(time.monotonic())

    def _send(self, path: str, params: list[tuple[str, str]]) -> requests.Response:
        """One paced GET; a 5xx answer or a dropped connection raises BoardUnavailable."""
        self._pace()
        self.calls += 1
        try:
            response = self.session.get(f"{self.base_url.rstrip('/')}{path}", params=params, timeout=self.timeout,
                                        headers={"x-api-key": self.api_key, "Authorization": f"Bearer {self.token}"})
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            raise BoardUnavailable(f"the connection to board dropped during {path} ({type(error).__name__})") from error
        if response.status_code in TRANSIENT_STATUSES:
            raise BoardUnavailable(f"board answered {response.status_code} to {path}: {message_of(response)}")
        return response

    def _send_retrying(self, path: str, params: list[tuple[str, str]]) -> requests.Response:
        """`_send`, tried again with exponential backoff while board is unavailable."""
        try:
            for attempt in Retrying(retry=retry_if_exception_type(BoardUnavailable),
                                    stop=stop_after_attempt(self.attempts),
                                    wait=wait_exponential(multiplier=self.retry_wait_seconds, max=60), reraise=True,
                                    before_sleep=lambda state: log.warning(
                                        "board: %s; trying again (attempt %s of %s)", state.outcome.exception(),
                                        state.attempt_number + 1, self.attempts)):
                with attempt:
                    return self._send(path, params)
        except BoardUnavailable as error:
            raise ExtractError(f"{error}, {self.attempts} tries in a row: board is unavailable; the load stopped "
                               f"and left the warehouse as it was, and the task's next retry (or the next run) "
                               f"reads again from the same watermark") from error

    def get(self, path: str, params: list[tuple[str, str]], *, missing_ok: bool = False) -> requests.Response:
        """GET `path`; waits and retries on `429 Too Many Requests`, 5xx and dropped connections; raises on any
        other error (a 404 is returned when `missing_ok`)."""
        for attempt in range(TOO_MANY_REQUESTS_RETRIES):
            response = self._send_retrying(path, params)
            if response.status_code != 429:
                break
            message = message_of(response)
            if "limit exceeded" in message.lower():
                raise DailyLimitReached(
                    f"board's daily API limit for this key is spent ({message}); the load stops here and resumes "
                    f"from its watermark on the next run")
            wait = float(response.headers.get("Retry-After") or 1.0 * (attempt + 1))
            log.warning("board: 429 %s; waiting %.1fs before trying again", message, wait)
            time.sleep(wait)
        else:
            raise ExtractError(f"board kept answering 429 Too Many Requests to {path} after "
                               f"{TOO_MANY_REQUESTS_RETRIES} tries; is another client using the same API key?")
        if response.status_code in (401, 403):
            raise ExtractError(f"board refused {path} ({response.status_code}: {message_of(response)}): check the "
                               f"API key and token of the board_default connection, and that the token may read "
                               f"{path.strip('/').split('/')[1]}")
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code >= 400:
            raise ExtractError(f"board answered {response.status_code} to {path}: {message_of(response)}")
        return response

    def pages(self, resource: str, params: list[tuple[str, str]], listing: Listing | None = None
              ) -> Iterator[list[dict]]:
        """Every page of a list, in board's order: until `X-Total-Count` records were read, or until an empty
        page (when board sends no total, or records moved between pages). `listing` records what was seen."""
        listing = listing if listing is not None else Listing()
        page = 1
        while True:
            response = self.get(f"/v1/{resource}",
                                [*params, ("page", str(page)), ("per_page", str(PER_PAGE))])
            records = response.json()
            if not isinstance(records, list):
                raise ExtractError(f"board /v1/{resource} page {page}: expected a JSON array, got "
                                   f"{type(records).__name__}")
            total = response.headers.get("X-Total-Count")
            listing.total = int(total) if total is not None else None
            listing.read += len(records)
            if not records:
                return
            yield records
            if listing.complete:
                return
            page += 1


def message_of(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except (ValueError, AttributeError):
        return response.text[:200]


def field(record: dict, column: str):
    """A column's value in a record: the field of the same name, or the nested field `NESTED` names."""
    value = record
    for step in NESTED.get(column, (column,)):
        value = value.get(step) if isinstance(value, dict) else None
    return value


def as_text(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def load_resource(client: BoardClient, warehouse_url: str, resource: str, *, run_id: str,
                  overlap: timedelta = DEFAULT_OVERLAP, full_refresh: bool = False,
                  reconcile_every: timedelta = DEFAULT_RECONCILE_EVERY) -> LoadResult:
    """Bring `raw_board.<resource>` (and, for invoices, `raw_board.invoice_details`) up to date.

    An incremental load also reads every id (a reconciliation) when the last complete read of the resource
    is older than `reconcile_every`; `timedelta(0)` reconciles now."""
    if resource not in COLUMNS:
        raise ExtractError(f"board has no resource {resource!r} in the extract list; use one of "
                           f"{', '.join(BOARD_RESOURCES)}")
    result = LoadResult(source_name=SOURCE_NAME, table_name=resource, run_id=run_id)
    clock = time.monotonic()
    calls_before = client.calls
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse, RAW_SCHEMA)
        result.started_at = warehouse.execute("select clock_timestamp()").fetchone()[0]
        try:
            with warehouse.transaction():
                _load(client, warehouse, resource, result, overlap=overlap, full_refresh=full_refresh,
                      reconcile_every=reconcile_every)
                result.api_calls = client.calls - calls_before
                result.duration_seconds = time.monotonic() - clock
                record_run(warehouse, result)
        except Exception as error:
            result.status, result.error = "failed", f"{type(error).__name__}: {error}"
            result.api_calls = client.calls - calls_before
            result.duration_seconds = time.monotonic() - clock
            with warehouse.transaction():
                record_run(warehouse, result)
            raise
    log.info("%s.%s: %s load, %s read, %s inserted, %s updated, %s deleted, %s quarantined, %s API calls in %.1fs "
             "(%s)", RAW_SCHEMA, resource, result.load_mode, result.rows_read, result.rows_inserted,
             result.rows_updated, result.rows_deleted, result.rows_quarantined, result.api_calls,
             result.duration_seconds, result.status)
    return result


def board_table(table: str, columns: dict[str, str], key: tuple[str, ...], version_column: str
                ) -> tuple[SourceTable, dict[str, SourceColumn]]:
    """A raw board table (typed columns + `_raw`) as the engine describes a source table."""
    described = {name: SourceColumn(source_type=kind, raw_type=kind, is_required=name in key)
                 for name, kind in {**columns, RAW_RECORD: "jsonb"}.items()}
    return SourceTable(table, key, watermark_column=version_column), described


def _load(client: BoardClient, warehouse: psycopg.Connection, resource: str, result: LoadResult, *,
          overlap: timedelta, full_refresh: bool, reconcile_every: timedelta) -> None:
    columns = COLUMNS[resource]
    table, described = board_table(resource, columns, ("id",), "updated_at")
    target = sql.Identifier(RAW_SCHEMA, resource)
    stage, types = prepare_api_stage(warehouse, table, described, result, RAW_SCHEMA)
    watermark, full = choose_load_mode(warehouse, table, result, RAW_SCHEMA, overlap=overlap,
                                       full_refresh=full_refresh)
    params = list(READ_PARAMETERS[resource])
    if result.watermark_from is not None:
        params.append(("updated_at_gteq", result.watermark_from.isoformat()))

    details_stage = None
    if resource == "invoices":
        details, details_described = board_table("invoice_details", DETAIL_COLUMNS, DETAIL_KEY, "invoice_updated_at")
        details_stage, details_types = prepare_api_stage(
            warehouse, details, details_described, LoadResult(SOURCE_NAME, "invoice_details", result.run_id),
            RAW_SCHEMA)
    names = [*columns, RAW_RECORD]
    detail_names = [*DETAIL_COLUMNS, RAW_RECORD]
    stopped = None
    listing = Listing()
    with warehouse.cursor() as cursor:
        try:
            for records in client.pages(resource, params, listing):
                with cursor.copy(sql.SQL("copy {} ({}) from stdin").format(stage, identifiers(names))) as copy:
                    for record in records:
                        copy.write_row([as_text(field(record, name)) for name in columns] + [as_text(record)])
                result.rows_read += len(records)
                if details_stage is not None:
                    with cursor.copy(sql.SQL("copy {} ({}) from stdin").format(
                            details_stage, identifiers(detail_names))) as copy:
                        for record in records:
                            for detail in (record.get("invoice") or {}).get("details") or ():
                                line = {**detail, "invoice_id": record.get("id"),
                                        "invoice_updated_at": record.get("updated_at")}
                                copy.write_row([as_text(line.get(name)) for name in DETAIL_COLUMNS] + [as_text(detail)])
        except DailyLimitReached as reached:
            stopped = reached
    read_ids = seen_keys(warehouse, stage, table, types)
    result.rows_inserted, result.rows_updated = quarantine_and_merge(warehouse, stage, table, types, result,
                                                                     RAW_SCHEMA)
    if details_stage is not None:
        quarantine_and_merge(warehouse, details_stage, details, details_types, result, RAW_SCHEMA)
        flag_removed_lines(warehouse, stage, details_stage)
    unflag_seen_rows(warehouse, target, table.primary_key, read_ids)
    complete_read = full
    if stopped is None and not full and reconcile_due(warehouse, resource, reconcile_every):
        result.load_mode, complete_read, listing = "reconcile", True, Listing()
        try:
            read_ids = read_every_id(client, warehouse, resource, listing)
        except DailyLimitReached as reached:
            stopped = reached
    if stopped is None and complete_read:
        try:
            flag_deleted(client, warehouse, resource, read_ids, listing, result)
        except DailyLimitReached as reached:
            stopped = reached
    if stopped is not None:
        result.status, result.error = "stopped", str(stopped)
        log.warning("%s.%s: %s", RAW_SCHEMA, resource, result.error)
        result.watermark_to = watermark
        return
    seen_until = warehouse.execute(sql.SQL("select least(max(updated_at::timestamptz), now()) from {}").format(
        stage)).fetchone()[0]
    result.watermark_to = seen_until or watermark
    if seen_until is not None:
        save_watermark(warehouse, SOURCE_NAME, resource, seen_until, reset=full)
    result.status = "succeeded"


def reconcile_due(warehouse: psycopg.Connection, resource: str, every: timedelta) -> bool:
    """True when no complete read of the resource (a full load or a reconciliation that checked deletes)
    succeeded within `every`."""
    return not warehouse.execute("""
        select exists (
            select from ops.extract_runs
            where source_name = %s and table_name = %s and status = 'succeeded'
                and load_mode in ('full', 'reconcile') and error is null and started_at > clock_timestamp() - %s
        )""", (SOURCE_NAME, resource, every)).fetchone()[0]


def read_every_id(client: BoardClient, warehouse: psycopg.Connection, resource: str,
                  listing: Listing) -> sql.Identifier:
    """Every id board lists for the resource (the full read's filters, the smallest response group), in a
    temporary table."""
    ids = sql.Identifier(f"listed_ids_{resource}")
    warehouse.execute(sql.SQL("create temporary table {} (id bigint) on commit drop").format(ids))
    params = [(name, value) for name, value in READ_PARAMETERS[resource] if name != "response_group"]
    with warehouse.cursor() as cursor:
        for records in client.pages(resource, params, listing):
            with cursor.copy(sql.SQL("copy {} (id) from stdin").format(ids)) as copy:
                for record in records:
                    copy.write_row([record.get("id")])
    return ids


def flag_deleted(client: BoardClient, warehouse: psycopg.Connection, resource: str, read_ids: sql.Identifier,
                 listing: Listing, result: LoadResult) -> None:
    """After a read of every record: flag the raw rows board no longer has (and un-flag those it has again).

    Nothing is flagged when the read fell short of board's total or got none: the audit row says so in
    `error` (the status stays `succeeded`) and the next run tries a complete read again. An id the read did
    not see is asked for on its own before it is flagged.
    """
    label = f"{RAW_SCHEMA}.{resource}"
    if not listing.complete:
        total = "no X-Total-Count" if listing.total is None else f"a total of {listing.total:,}"
        result.error = (f"deletes not checked: read {listing.read:,} records against {total} (records deleted "
                        f"or added while the pages were read, or no total sent); nothing was flagged deleted, "
                        f"and the next run reads every id again")
        log.warning("%s: %s", label, result.error)
        return
    target = sql.Identifier(RAW_SCHEMA, resource)
    unseen = warehouse.execute(sql.SQL("""
        select raw.id, raw.{raw_record} ->> 'project_no' from {target} as raw
        where raw.{deleted_at} is null and raw.{source_file} is null
            and not exists (select from {read_ids} as seen where seen.id = raw.id)
        order by raw.id
    """).format(raw_record=sql.Identifier(RAW_RECORD), target=target, deleted_at=sql.Identifier(DELETED_AT),
                source_file=sql.Identifier(SOURCE_FILE), read_ids=read_ids)).fetchall()
    still_there = [record_id for record_id, project_no in unseen if board_has(client, resource, record_id, project_no)]
    if still_there:
        log.warning("%s: %s record(s) missing from the list are still in board (moved between pages): ids %s",
                    label, len(still_there), still_there[:20])
        with warehouse.cursor().copy(sql.SQL("copy {} (id) from stdin").format(read_ids)) as copy:
            for record_id in still_there:
                copy.write_row([record_id])
    result.rows_deleted = flag_deleted_rows(warehouse, target, ("id",), read_ids)


def board_has(client: BoardClient, resource: str, record_id: int, project_no: str | None) -> bool:
    """Whether board still has one record: read by id, or for an invoice (board has no single-invoice read)
    looked for among its project's invoices. An invoice without a project number is taken as still there."""
    if resource != "invoices":
        return client.get(f"/v1/{resource}/{record_id}", [], missing_ok=True).status_code != 404
    if project_no is None:
        log.warning("%s.invoices: invoice %s has no project number to look it up by; not flagged deleted",
                    RAW_SCHEMA, record_id)
        return True
    return any(record.get("id") == record_id
               for records in client.pages("invoices", [("project_project_no_eq", str(project_no))])
               for record in records)


def flag_removed_lines(warehouse: psycopg.Connection, invoices: sql.Composable, lines: sql.Composable) -> int:
    """A line item gone from an invoice that was read again is flagged deleted (and un-flagged if it returns)."""
    deleted_at = sql.Identifier(DELETED_AT)
    same_line = sql.SQL("seen.invoice_id::bigint = raw.invoice_id and seen.no::integer = raw.no")
    warehouse.execute(sql.SQL("""
        update raw_board.invoice_details as raw set {deleted_at} = null
        from {lines} as seen where {same_line} and raw.{deleted_at} is not null
    """).format(deleted_at=deleted_at, lines=lines, same_line=same_line))
    return warehouse.execute(sql.SQL("""
        update raw_board.invoice_details as raw set {deleted_at} = now()
        where raw.{deleted_at} is null
            and raw.invoice_id in (select id::bigint from {invoices})
            and not exists (select from {lines} as seen where {same_line})
    """).format(deleted_at=deleted_at, invoices=invoices, lines=lines, same_line=same_line)).rowcount
