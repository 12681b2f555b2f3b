"""The board sandbox's tables (schema `board`) and board's codes.

The tables keep the sandbox's own names and codes (the seed writes them); the API layer (`store.VIEWS`)
shows them under board API v1's field names and codes:
- order status, 受注ステータス (`projects.order_status`): 1 見積中(高), 2 見積中(中), 3 見積中(低),
  8 見積中(除), 4 受注確定, 5 受注済, 9 失注. A signed contract is 受注済 (5), before and after it ends: an
  ended contract is told by its `contract_end_date`, board has no "finished" status.
- invoice status, 請求ステータス (`invoices.invoice_status`): 1 未請求, 4 請求OK, 2 請求済, 5 一部入金済,
  3 入金済, 9 回収不能.
- invoice timing, 請求タイミング (`projects.invoice_timing_kbn`): 1 一括請求 (one-off), 2 定期請求
  (recurring: monthly, or yearly for annual prepaid contracts), 3 分割請求 (instalments).
- amounts: board's `total` is the amount excluding tax (小計) and `tax` the consumption tax (10%, rounded
  down to the yen); there is no tax-inclusive field. A credit note is an invoice with negative amounts.
  Line items carry `tax_rate` ("10.0").

Timestamps are stored in UTC (timestamptz) and shown by the API in Japan time (`+09:00`).
"""

from __future__ import annotations

# The codes stored in the tables (the seed's vocabulary).
ORDER_QUOTING, ORDER_CONFIRMED, ORDER_LOST, ORDER_FINISHED = 1, 2, 3, 4
INVOICE_DRAFT, INVOICE_SENT, INVOICE_PAID, INVOICE_UNCOLLECTIBLE = 1, 2, 3, 4
TIMING_ONE_OFF, TIMING_RECURRING, TIMING_INSTALMENTS = 1, 2, 3
TAX_RATE = 10

# board's codes as the API returns them, with their names.
ORDER_STATUSES = {1: "見積中(高)", 2: "見積中(中)", 3: "見積中(低)", 8: "見積中(除)", 4: "受注確定", 5: "受注済",
                  9: "失注"}
INVOICE_STATUSES = {1: "未請求", 4: "請求OK", 2: "請求済", 5: "一部入金済", 3: "入金済", 9: "回収不能"}
INVOICE_TIMINGS = {1: "一括請求", 2: "定期請求", 3: "分割請求"}
BOARD_ORDER_LOST = 9
# Stored code -> board's code.
ORDER_STATUS_CODES = {ORDER_QUOTING: 1, ORDER_CONFIRMED: 5, ORDER_LOST: BOARD_ORDER_LOST, ORDER_FINISHED: 5}
INVOICE_STATUS_CODES = {INVOICE_DRAFT: 1, INVOICE_SENT: 2, INVOICE_PAID: 3, INVOICE_UNCOLLECTIBLE: 9}

SCHEMA = "board"

DATA_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.clients (
    id bigint primary key,
    name text not null,
    name_disp text not null,
    management_no text not null,
    tel text,
    zip text,
    address text,
    archived boolean not null default false,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table if not exists {SCHEMA}.projects (
    id bigint primary key,
    client_id bigint not null references {SCHEMA}.clients (id),
    project_no text not null,
    name text not null,
    order_status integer not null check (order_status between 1 and 4),
    invoice_timing integer not null check (invoice_timing between 1 and 3),
    estimate_date date,
    order_date date,
    billing_start_date date,
    billing_end_date date,
    archived boolean not null default false,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table if not exists {SCHEMA}.invoices (
    id bigint primary key,
    project_id bigint not null references {SCHEMA}.projects (id),
    client_id bigint not null references {SCHEMA}.clients (id),
    invoice_no text not null,
    invoice_date date not null,
    payment_due_date date not null,
    paid_date date,
    invoice_status integer not null check (invoice_status between 1 and 4),
    service_period_start date,
    service_period_end date,
    subtotal numeric(14, 1) not null,
    tax numeric(14, 1) not null,
    total numeric(14, 1) not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table if not exists {SCHEMA}.invoice_details (
    id bigint primary key,
    invoice_id bigint not null references {SCHEMA}.invoices (id),
    sort_no integer not null,
    description text not null,
    unit_price numeric(14, 1) not null,
    quantity numeric(10, 1) not null,
    unit text not null,
    amount numeric(14, 1) not null,
    tax_rate integer not null
);
create index if not exists invoices_updated_at on {SCHEMA}.invoices (updated_at);
create index if not exists invoices_client_id on {SCHEMA}.invoices (client_id);
create index if not exists invoice_details_invoice_id on {SCHEMA}.invoice_details (invoice_id);
create table if not exists {SCHEMA}.world (
    accounts integer not null, days integer not null, seed integer not null,
    planned_end_date date not null, generated_through date not null
);
"""

# The API server's bookkeeping: calls per API key and Japan-time day, and settings (daily limit, per-second
# limit on or off).
META_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.api_usage (
    api_key_hash text not null, day date not null, used bigint not null, primary key (api_key_hash, day)
);
create table if not exists {SCHEMA}.settings (name text primary key, value jsonb not null);
"""

DATA_TABLES = ("invoice_details", "invoices", "projects", "clients", "world")
