"""Copy board (billing) clients, projects and invoices into the warehouse's `raw_board` schema.

board's REST API is rate limited: at most 3 requests a second and a daily budget per API key. The
extract is built around that:
- a client-side limiter spaces requests so no 1-second window holds more than 3; a `429 Too Many
  Requests` (another client sharing the key) is answered by waiting and trying again, so a burst never
  fails the run;
- `429 Limit Exceeded` (the daily budget) stops the load cleanly: the pages already read are merged, the
  watermark does not move, the audit row says `stopped` and why, and the next run re-reads from the same
  watermark (merging is idempotent, so nothing is counted twice);
- pages of 100 (the most board allows), every page read until `X-Total-Count` is reached.

One resource is loaded like one Nexpro table, with the same ops tables: incremental by `updated_at` with
the overlap (`updated_at_gteq`), merged on `id` (a row is rewritten only when a value changed), the
watermark and the audit row committed with the data. Each record lands as typed columns (board's field
names; `client_id` is the nested `client.id`) plus `_raw`, the record exactly as board sent it (`jsonb`),
so a field board adds is kept before anyone maps it. Projects are read with `include_lost_flg=1` (board
leaves 失注 out otherwise). Invoice line items (`invoice.details`, read with `response_group=invoice`) are
their own table, `raw_board.invoice_details`, keyed by invoice and line number (`no`: board's lines have
no id of their own); a line removed from a re-read invoice is flagged `_deleted_at`.
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

from csops.extract.board_resources import BOARD_RESOURCES, RAW_SCHEMA, SOURCE_NAME
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
)

log = logging.getLogger(__name__)

PER_PAGE = 100
REQUESTS_PER_SECOND = 3
TOO_MANY_REQUESTS_RETRIES = 10
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
READ_PARAMETERS = {"clients": [("response_group", "large")],
                   "projects": [("response_group", "large"), ("include_lost_flg", "1")],
                   "invoices": [("response_group", "invoice")]}


class DailyLimitReached(ExtractError):
    """board answered `429 Limit Exceeded`: the API key's daily budget is spent."""


@dataclass
class BoardClient:
    """board API v1 over HTTP: both credentials on every call, paced under the per-second limit."""

    base_url: str
    api_key: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)
    requests_per_second: int = REQUESTS_PER_SECOND
    timeout: float = 60.0
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

    def get(self, path: str, params: list[tuple[str, str]]) -> requests.Response:
        """GET `path`; waits and retries on `429 Too Many Requests`; raises on any other error."""
        for attempt in range(TOO_MANY_REQUESTS_RETRIES):
            self._pace()
            response = self.session.get(f"{self.base_url.rstrip('/')}{path}", params=params, timeout=self.timeout,
                                        headers={"x-api-key": self.api_key, "Authorization": f"Bearer {self.token}"})
            self.calls += 1
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
                               f"{path.strip('/').split('/')[-1]}")
        if response.status_code >= 400:
            raise ExtractError(f"board answered {response.status_code} to {path}: {message_of(response)}")
        return response

    def pages(self, resource: str, params: list[tuple[str, str]]) -> Iterator[list[dict]]:
        """Every page of a list, in board's order, until the last (`X-Total-Count` says how many records)."""
        page, seen = 1, 0
        while True:
            response = self.get(f"/v1/{resource}",
                                [*params, ("page", str(page)), ("per_page", str(PER_PAGE))])
            records = response.json()
            if not isinstance(records, list):
                raise ExtractError(f"board /v1/{resource} page {page}: expected a JSON array, got "
                                   f"{type(records).__name__}")
            total = int(response.headers.get("X-Total-Count", seen + len(records)))
            seen += len(records)
            yield records
            if not records or seen >= total:
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
                  overlap: timedelta = DEFAULT_OVERLAP, full_refresh: bool = False) -> LoadResult:
    """Bring `raw_board.<resource>` (and, for invoices, `raw_board.invoice_details`) up to date."""
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
                _load(client, warehouse, resource, result, overlap=overlap, full_refresh=full_refresh)
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
          overlap: timedelta, full_refresh: bool) -> None:
    columns = COLUMNS[resource]
    table, described = board_table(resource, columns, ("id",), "updated_at")
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
    with warehouse.cursor() as cursor:
        try:
            for records in client.pages(resource, params):
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
    result.rows_inserted, result.rows_updated = quarantine_and_merge(warehouse, stage, table, types, result,
                                                                     RAW_SCHEMA)
    if details_stage is not None:
        quarantine_and_merge(warehouse, details_stage, details, details_types, result, RAW_SCHEMA)
        flag_removed_lines(warehouse, stage, details_stage)
    if full and stopped is None:
        result.rows_deleted = flag_unseen(warehouse, resource, stage)
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


def flag_unseen(warehouse: psycopg.Connection, resource: str, stage: sql.Composable) -> int:
    """After a complete full read: records board no longer lists were deleted there; flag them."""
    return warehouse.execute(sql.SQL("""
        update {target} as raw set {deleted_at} = now()
        where raw.{deleted_at} is null and not exists (select from {stage} as seen where seen.id::bigint = raw.id)
    """).format(target=sql.Identifier(RAW_SCHEMA, resource), deleted_at=sql.Identifier(DELETED_AT),
                stage=stage)).rowcount
