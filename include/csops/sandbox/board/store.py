"""Reading the board sandbox's tables for the API, and the API's bookkeeping (usage, settings).

The tables keep the sandbox's own column names and codes; `VIEWS` shows each resource under board's field
names and codes, so filters and responses speak board's language. List queries take board's Ransack-style
filters already parsed into `Filter`s (view column, operator, values) and page in a stable order: projects
newest first (as board lists them), the others by id. API usage is counted per API key (kept hashed) and
Japan-time day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from csops.sandbox.board.schema import INVOICE_STATUS_CODES, META_DDL, ORDER_STATUS_CODES, SCHEMA

DAILY_LIMIT = "daily_limit"
PER_SECOND_LIMIT = "per_second_limit_enabled"
TOTAL_COUNT_HEADER = "total_count_header"
FAULTS = "faults"
FAULT_ACTIONS = ("unavailable", "drop")  # a 503 answer; the connection cut before the answer's body
DEFAULT_DAILY_LIMIT = 3_000
OPERATORS = {"eq": "=", "gteq": ">=", "lteq": "<=", "gt": ">", "lt": "<"}
RESOURCES = ("clients", "projects", "invoices")


def code_case(column: str, codes: dict[int, int]) -> str:
    return f"case {column} " + " ".join(f"when {stored} then {board}" for stored, board in codes.items()) + " end"


# board's project number is an integer; the sandbox stores 'P0000042'.
PROJECT_NO = "nullif(regexp_replace(p.project_no, '\\D', '', 'g'), '')::bigint"
VIEWS = {
    "clients": f"""select id, name, name_disp, null::text as title, zip, null::text as pref, address as address1,
        null::text as address2, tel, null::text as fax, management_no as custom_no, created_at, updated_at,
        archived from {SCHEMA}.clients""",
    "projects": f"""select p.id, p.client_id, {PROJECT_NO} as project_no, p.name,
        {code_case("p.order_status", ORDER_STATUS_CODES)} as order_status, p.invoice_timing as invoice_timing_kbn,
        p.estimate_date, p.order_date as ordered_date, p.billing_start_date as contract_start_date,
        p.billing_end_date as contract_end_date, p.created_at, p.updated_at, p.archived
        from {SCHEMA}.projects as p""",
    "invoices": f"""select i.id, i.project_id, {PROJECT_NO} as project_no, p.name, i.client_id, i.invoice_no,
        i.invoice_date, i.payment_due_date as payment_limit_date, i.paid_date,
        {code_case("i.invoice_status", INVOICE_STATUS_CODES)} as invoice_status,
        {code_case("p.order_status", ORDER_STATUS_CODES)} as order_status, i.service_period_start,
        i.service_period_end, i.subtotal as total, i.tax, i.created_at, i.updated_at
        from {SCHEMA}.invoices as i join {SCHEMA}.projects as p on p.id = i.project_id""",
}
NEWEST_FIRST = {"projects"}


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str  # one of OPERATORS, or "in"
    values: tuple


def ensure_schema(conn: psycopg.Connection) -> None:
    conn.execute(META_DDL)


def where_clause(filters: list[Filter]) -> tuple[str, list]:
    parts, arguments = [], []
    for item in filters:
        if item.operator == "in":
            parts.append(f"{item.column} = any(%s)")
            arguments.append(list(item.values))
        elif item.operator == "cont":
            parts.append(f"strpos({item.column}, %s) > 0")
            arguments.append(item.values[0])
        elif item.operator == "not":
            parts.append(f"{item.column} is distinct from %s")
            arguments.append(item.values[0])
        else:
            parts.append(f"{item.column} {OPERATORS[item.operator]} %s")
            arguments.append(item.values[0])
    return (" where " + " and ".join(parts)) if parts else "", arguments


def list_rows(conn: psycopg.Connection, resource: str, filters: list[Filter], page: int,
              per_page: int) -> tuple[list[dict], int]:
    """One page of a resource's rows matching the filters, and how many match in all."""
    where, arguments = where_clause(filters)
    view = f"({VIEWS[resource]}) as {resource}"
    order = "id desc" if resource in NEWEST_FIRST else "id"
    total = conn.execute(f"select count(*) from {view}{where}", arguments).fetchone()[0]
    rows = conn.cursor(row_factory=dict_row).execute(
        f"select * from {view}{where} order by {order} limit %s offset %s",
        [*arguments, per_page, (page - 1) * per_page]).fetchall()
    return rows, total


def get_row(conn: psycopg.Connection, resource: str, record_id: int) -> dict | None:
    return conn.cursor(row_factory=dict_row).execute(
        f"select * from ({VIEWS[resource]}) as {resource} where id = %s", (record_id,)).fetchone()


def details_of(conn: psycopg.Connection, invoice_ids: list[int]) -> dict[int, list[dict]]:
    """Each invoice's line items under board's names (`no`, `price`), in line order."""
    found: dict[int, list[dict]] = {invoice_id: [] for invoice_id in invoice_ids}
    for row in conn.cursor(row_factory=dict_row).execute(
            f"select invoice_id, sort_no as no, description, quantity, unit, unit_price, amount as price, tax_rate "
            f"from {SCHEMA}.invoice_details where invoice_id = any(%s) order by invoice_id, sort_no",
            (invoice_ids,)):
        found[row["invoice_id"]].append(row)
    return found


def clients_by_id(conn: psycopg.Connection, client_ids: list[int]) -> dict[int, dict]:
    """The `client` object board nests in projects and invoices."""
    rows = conn.cursor(row_factory=dict_row).execute(
        f"select id, name, name_disp, management_no as custom_no from {SCHEMA}.clients where id = any(%s)",
        (client_ids,))
    return {row["id"]: row for row in rows}


# --- Settings and usage ----------------------------------------------------------------------------------


def get_setting(conn: psycopg.Connection, name: str, default):
    row = conn.execute(f"select value from {SCHEMA}.settings where name = %s", (name,)).fetchone()
    return default if row is None else row[0]


def set_setting(conn: psycopg.Connection, name: str, value) -> None:
    conn.execute(f"insert into {SCHEMA}.settings values (%s, %s) on conflict (name) do update set value = "
                 "excluded.value", (name, Jsonb(value)))


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def japan_day(now: datetime | None = None) -> date:
    return ((now or datetime.now(UTC)) + timedelta(hours=9)).date()


def count_call(conn: psycopg.Connection, api_key: str) -> tuple[int, int, bool]:
    """Count one call against the key's budget for today (Japan time): (used, limit, allowed).

    Refused calls are not counted.
    """
    limit = get_setting(conn, DAILY_LIMIT, DEFAULT_DAILY_LIMIT)
    row = conn.execute(
        f"insert into {SCHEMA}.api_usage as usage values (%(key)s, %(day)s, 1) on conflict (api_key_hash, day) "
        "do update set used = usage.used + 1 where usage.used < %(limit)s returning used",
        {"key": key_hash(api_key), "day": japan_day(), "limit": limit}).fetchone()
    if row is None or row[0] > limit:
        return usage(conn, api_key)[0], limit, False
    return row[0], limit, True


def usage(conn: psycopg.Connection, api_key: str) -> tuple[int, int]:
    row = conn.execute(f"select used from {SCHEMA}.api_usage where api_key_hash = %s and day = %s",
                       (key_hash(api_key), japan_day())).fetchone()
    return (row[0] if row else 0), get_setting(conn, DAILY_LIMIT, DEFAULT_DAILY_LIMIT)


def reset_usage(conn: psycopg.Connection) -> None:
    conn.execute(f"delete from {SCHEMA}.api_usage where day = %s", (japan_day(),))


def add_fault(conn: psycopg.Connection, action: str, times: int) -> None:
    """The next `times` API calls fail with `action` (after any faults already queued)."""
    conn.execute(f"insert into {SCHEMA}.settings values (%s, %s) on conflict (name) do update set value = "
                 f"{SCHEMA}.settings.value || excluded.value", (FAULTS, Jsonb([action] * times)))


def next_fault(conn: psycopg.Connection) -> str | None:
    """Take the next queued fault, if any."""
    row = conn.execute(f"update {SCHEMA}.settings as s set value = s.value - 0 from (select value -> 0 as first "
                       f"from {SCHEMA}.settings where name = %s for update) as taken "
                       f"where s.name = %s and jsonb_array_length(s.value) > 0 returning taken.first",
                       (FAULTS, FAULTS)).fetchone()
    return row[0] if row else None


def clear_faults(conn: psycopg.Connection) -> None:
    conn.execute(f"delete from {SCHEMA}.settings where name = %s", (FAULTS,))
