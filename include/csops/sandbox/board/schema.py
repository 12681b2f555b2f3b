"""The board sandbox's tables (schema `board`) and board's codes as the API returns them.

board's codes (integers in the API, with their Japanese names):
- order status, 受注ステータス (`projects.order_status`): 1 見積中 (quoting), 2 受注確定 (order confirmed),
  3 失注 (lost), 4 完了 (finished: the contract has ended).
- invoice status, 請求ステータス (`invoices.invoice_status`): 1 未請求 (drafted, not sent), 2 請求済 (sent),
  3 入金済 (paid), 4 回収不能 (written off as uncollectible).
- invoice timing, 請求タイミング (`projects.invoice_timing`): 1 一括 (one-off), 2 定期 (recurring: monthly,
  or yearly for annual prepaid contracts), 3 分割 (instalments).
- tax: consumption tax 10% (`tax_rate` 10). An invoice carries `subtotal` (excluding tax), `tax` (the tax
  amount, rounded down to the yen) and `total` (including tax). A credit note is an invoice with negative
  amounts.

Timestamps are stored in UTC (timestamptz) and shown by the API in Japan time (`+09:00`).
"""

from __future__ import annotations

ORDER_STATUSES = {1: "見積中", 2: "受注確定", 3: "失注", 4: "完了"}
INVOICE_STATUSES = {1: "未請求", 2: "請求済", 3: "入金済", 4: "回収不能"}
INVOICE_TIMINGS = {1: "一括", 2: "定期", 3: "分割"}
ORDER_QUOTING, ORDER_CONFIRMED, ORDER_LOST, ORDER_FINISHED = 1, 2, 3, 4
INVOICE_DRAFT, INVOICE_SENT, INVOICE_PAID, INVOICE_UNCOLLECTIBLE = 1, 2, 3, 4
TIMING_ONE_OFF, TIMING_RECURRING, TIMING_INSTALMENTS = 1, 2, 3
TAX_RATE = 10

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
