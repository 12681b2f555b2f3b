"""The board sandbox's HTTP API: board API v1's read endpoints for clients, projects and invoices.

Every `/v1/` call passes one gate, in this order: authentication (both `x-api-key` and
`Authorization: Bearer <token>`, else 401), the per-second limit (more than 3 calls in any one-second
window per API key: 429 "Too Many Requests"), the daily budget per API key (429 "Limit Exceeded"), then
the token's permission for the resource (403). Errors are `{"message": ...}`; invalid parameters give
422 `{"message": ..., "errors": [...]}`.

Lists (`/v1/clients`, `/v1/projects`, `/v1/invoices`) are JSON arrays paged by `page` (1-based) and
`per_page` (default 10, at most 100), with `X-Total-Count`, `X-Page` and `X-Per-Page` headers; projects come
newest first (as board lists them), the others by id. One record: `/v1/clients/{id}` and
`/v1/projects/{id}` (board has no single-invoice read). `response_group` chooses the fields: small (the
default), medium, large, and for projects and invoices also estimate, order, delivery, invoice, receipt,
project_cost and all; an invoice's document with its line items (`invoice.details`) comes with invoice or
all. Filters are board's documented query parameters (`FILTERS`): `_eq`, `_gteq`, `_lteq`, `_cont` and
`_in[]` (repeated, or comma separated); projects leave out 失注 unless `include_lost_flg=1`, and clients and
projects leave out archived ones (アーカイブ) unless `include_archive_flg=1`.
Amounts are strings (`"50000.0"`), timestamps ISO 8601 in Japan time (`+09:00`), dates `YYYY-MM-DD`.

`/sandbox/admin/` (not board) sets and reads the limits for tests, queues faults (the next calls answer
503, or have their connection cut after the headers) and can leave `X-Total-Count` out of list answers, as
some API gateways do; it needs the admin token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from csops.sandbox.board import store
from csops.sandbox.board.schema import BOARD_ORDER_LOST, INVOICE_STATUSES, INVOICE_TIMINGS, ORDER_STATUSES

JST = timezone(timedelta(hours=9))
ADMIN_TOKEN_HEADER = "X-Sandbox-Admin-Token"
DEFAULT_PER_PAGE, MAX_PER_PAGE = 10, 100
PER_SECOND_CALLS = 3
DOCUMENT_GROUPS = ("estimate", "order", "delivery", "invoice", "receipt", "project_cost", "all")
RESPONSE_GROUPS = {"clients": ("small", "large"),
                   "projects": ("small", "medium", "large", *DOCUMENT_GROUPS),
                   "invoices": ("small", "medium", "large", *DOCUMENT_GROUPS)}
SINGLE_READS = ("clients", "projects")
FLAGS = {"clients": ("include_archive_flg",), "projects": ("include_lost_flg", "include_archive_flg"),
         "invoices": ()}

# board's query parameters per resource: parameter -> (view column, how its values are read).
FILTERS: dict[str, dict[str, tuple[str, type]]] = {
    "clients": {"name_cont": ("name", str), "name_disp_cont": ("name_disp", str), "custom_no_eq": ("custom_no", str),
                "updated_at_gteq": ("updated_at", datetime), "updated_at_lteq": ("updated_at", datetime)},
    "projects": {"name_cont": ("name", str), "client_id_eq": ("client_id", int),
                 "order_status_in[]": ("order_status", int), "project_no_eq": ("project_no", int),
                 "invoice_timing_kbn_in[]": ("invoice_timing_kbn", int),
                 "created_at_gteq": ("created_at", datetime), "created_at_lteq": ("created_at", datetime),
                 "updated_at_gteq": ("updated_at", datetime), "updated_at_lteq": ("updated_at", datetime)},
    "invoices": {"invoice_date_gteq": ("invoice_date", date), "invoice_date_lteq": ("invoice_date", date),
                 "invoice_payment_limit_date_gteq": ("payment_limit_date", date),
                 "invoice_payment_limit_date_lteq": ("payment_limit_date", date),
                 "project_order_status_in[]": ("order_status", int), "invoice_status_in[]": ("invoice_status", int),
                 "project_project_no_eq": ("project_no", int), "project_client_id_eq": ("client_id", int),
                 "project_name_cont": ("name", str),
                 "updated_at_gteq": ("updated_at", datetime), "updated_at_lteq": ("updated_at", datetime)},
}
# The fields of each response group (each group adds to the one before it; groups past large add
# documents). `client` is the nested {id, name, name_disp, custom_no}.
FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "clients": {"small": ("id", "name", "name_disp", "title", "zip", "pref", "address1", "address2", "tel", "fax",
                          "custom_no", "created_at", "updated_at"), "large": ()},
    "projects": {"small": ("id", "project_no", "name", "client", "estimate_date", "order_status",
                           "order_status_name", "created_at", "updated_at"),
                 "medium": ("ordered_date", "invoice_timing_kbn", "invoice_timing_kbn_name", "contract_start_date",
                            "contract_end_date"), "large": ()},
    "invoices": {"small": ("id", "project_id", "project_no", "name", "client", "invoice_no", "total", "tax",
                           "invoice_date", "payment_limit_date", "paid_date", "order_status", "order_status_name",
                           "invoice_status", "invoice_status_name", "service_period_start", "service_period_end",
                           "created_at", "updated_at"), "medium": (), "large": ()},
}
CODE_NAMES = {"order_status": ORDER_STATUSES, "invoice_status": INVOICE_STATUSES,
              "invoice_timing_kbn": INVOICE_TIMINGS}
DETAIL_FIELDS = ("no", "description", "quantity", "unit", "unit_price", "price", "tax_rate")


class BoardError(Exception):
    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status)


def create_app(database_url: str, credentials: dict, pool_size: int = 4) -> FastAPI:
    """The API over the database at `database_url`; `credentials` holds `api_key`, `tokens` (token →
    resources it may read) and `admin_token`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = ConnectionPool(database_url, min_size=1, max_size=pool_size, open=False, name="board-sandbox")
        pool.open(wait=True, timeout=60)
        with pool.connection() as conn:
            store.ensure_schema(conn)
        app.state.pool = pool
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="csops board sandbox", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.credentials = credentials
    app.state.recent_calls = deque()
    app.state.calls_lock = threading.Lock()
    app.include_router(api_router)
    app.include_router(admin_router)
    app.add_exception_handler(BoardError, lambda _request, error: error.response())
    app.middleware("http")(scripted_faults)
    return app


async def scripted_faults(request: Request, call_next):
    """A fault queued through the admin API answers the next `/v1/` call instead of the API."""
    if request.url.path.startswith("/v1/"):
        with request.app.state.pool.connection() as conn:
            fault = store.next_fault(conn)
        if fault == "unavailable":
            return JSONResponse({"message": "Service Unavailable"}, status_code=503)
        if fault == "drop":
            return StreamingResponse(cut_connection(), media_type="application/json")
    return await call_next(request)


async def cut_connection():
    """A body that never comes: the server closes the connection once the headers are out."""
    raise ConnectionAbortedError("board sandbox: connection cut on purpose (a queued fault)")
    yield b""  # pragma: no cover - makes this a generator


# --- The gate --------------------------------------------------------------------------------------------


def within_per_second_limit(request: Request) -> bool:
    """True when this call is at most the third in the last second; only admitted calls are remembered."""
    now = time.monotonic()
    with request.app.state.calls_lock:
        calls = request.app.state.recent_calls
        while calls and now - calls[0] >= 1.0:
            calls.popleft()
        if len(calls) >= PER_SECOND_CALLS:
            return False
        calls.append(now)
        return True


def admit(request: Request, resource: str, api_key: str | None, authorization: str | None) -> None:
    credentials = request.app.state.credentials
    token = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else None
    if not api_key or not secrets.compare_digest(api_key.encode(), credentials["api_key"].encode()):
        raise BoardError(401, "Unauthorized: send your account's API key in the x-api-key header")
    if token is None or token not in credentials["tokens"]:
        raise BoardError(401, "Unauthorized: send a valid access token as 'Authorization: Bearer <token>'")
    with request.app.state.pool.connection() as conn:
        enabled = store.get_setting(conn, store.PER_SECOND_LIMIT, True)
        if enabled and not within_per_second_limit(request):
            raise BoardError(429, "Too Many Requests")
        if not store.count_call(conn, api_key)[2]:
            raise BoardError(429, "Limit Exceeded")
    if resource not in credentials["tokens"][token]:
        raise BoardError(403, f"Forbidden: this access token has no permission to read {resource}")


# --- Parameters ------------------------------------------------------------------------------------------


def parse_value(kind: type, text: str) -> Any:
    if kind is int:
        return int(text)
    if kind is date:
        return date.fromisoformat(text)
    if kind is datetime:
        moment = datetime.fromisoformat(text.replace(" ", "+"))  # '+' arrives as a space when not encoded
        return moment if moment.tzinfo else moment.replace(tzinfo=JST)
    return text


def parse_filter(resource: str, name: str, values: list[str]) -> store.Filter:
    filters = FILTERS[resource]
    if name not in filters:
        allowed = ", ".join([*filters, *FLAGS[resource]])
        raise BoardError(422, "Validation failed",
                         [f"{name} is not a parameter of /v1/{resource} (filters: {allowed})"])
    column, kind = filters[name]
    operator = "in" if name.endswith("_in[]") else name.rpartition("_")[2]
    # `_in[]` values come repeated or comma separated; other parameters take their last value.
    values = [part for value in values for part in value.split(",") if part] if operator == "in" else values[-1:]
    try:
        parsed = tuple(parse_value(kind, value) for value in values)
    except ValueError:
        raise BoardError(422, "Validation failed", [f"{name}: {values!r} is not a valid {kind.__name__}"]) from None
    return store.Filter(column, operator, parsed)


def positive_int(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise BoardError(422, "Validation failed", [f"{name} must be a positive integer, not {text!r}"])
    return int(text)


def flag(name: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise BoardError(422, "Validation failed", [f"{name} must be 0 or 1, not {text!r}"])
    return text == "1"


def list_parameters(request: Request, resource: str) -> tuple[list[store.Filter], int, int, str]:
    grouped: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        grouped.setdefault(name, []).append(value)
    page = positive_int("page", grouped.pop("page", ["1"])[-1])
    per_page = positive_int("per_page", grouped.pop("per_page", [str(DEFAULT_PER_PAGE)])[-1])
    if per_page > MAX_PER_PAGE:
        raise BoardError(422, "Validation failed", [f"per_page must be at most {MAX_PER_PAGE}, not {per_page}"])
    group = response_group(resource, grouped.pop("response_group", ["small"])[-1])
    flags = {name: flag(name, grouped.pop(name, ["0"])[-1]) for name in FLAGS[resource]}
    filters = [parse_filter(resource, name, values) for name, values in grouped.items()]
    if resource == "projects" and not flags["include_lost_flg"]:
        filters.append(store.Filter("order_status", "not", (BOARD_ORDER_LOST,)))
    if "include_archive_flg" in flags and not flags["include_archive_flg"]:
        filters.append(store.Filter("archived", "not", (True,)))
    return filters, page, per_page, group


def response_group(resource: str, value: str) -> str:
    if value not in RESPONSE_GROUPS[resource]:
        raise BoardError(422, "Validation failed",
                         [f"response_group of /v1/{resource} must be one of {', '.join(RESPONSE_GROUPS[resource])}"])
    return value


# --- Rendering -------------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.astimezone(JST).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def field_names(resource: str, group: str) -> list[str]:
    """The fields of a group: its own and those of the groups before it (document groups include large)."""
    levels = FIELDS[resource]
    last = list(levels).index(group) if group in levels else len(levels) - 1
    return [name for level in list(levels)[:last + 1] for name in levels[level]]


def render_rows(conn, resource: str, rows: list[dict], group: str) -> list[dict]:
    names = field_names(resource, group)
    clients = store.clients_by_id(conn, [row["client_id"] for row in rows]) if "client" in names else {}
    bodies = []
    for row in rows:
        body = {}
        for name in names:
            if name == "client":
                body[name] = clients.get(row["client_id"])
            elif name.endswith("_name") and name.removesuffix("_name") in CODE_NAMES:
                code = name.removesuffix("_name")
                body[name] = CODE_NAMES[code].get(row[code])
            else:
                body[name] = json_value(row[name])
        bodies.append(body)
    if resource == "invoices" and group in ("invoice", "all"):
        details = store.details_of(conn, [row["id"] for row in rows])
        for row, body in zip(rows, bodies, strict=True):
            body["invoice"] = {"invoice_date": body["invoice_date"], "payment_limit_date": body["payment_limit_date"],
                               "total": body["total"], "tax": body["tax"],
                               "details": [detail_body(line) for line in details[row["id"]]]}
    return bodies


def detail_body(line: dict) -> dict:
    body = {name: json_value(line[name]) for name in DETAIL_FIELDS}
    body["tax_rate"] = f"{Decimal(line['tax_rate']):.1f}"
    return body


# --- Endpoints -------------------------------------------------------------------------------------------

api_router = APIRouter(prefix="/v1")


def list_resource(request: Request, resource: str, api_key: str | None, authorization: str | None) -> JSONResponse:
    admit(request, resource, api_key, authorization)
    filters, page, per_page, group = list_parameters(request, resource)
    with request.app.state.pool.connection() as conn:
        rows, total = store.list_rows(conn, resource, filters, page, per_page)
        body = render_rows(conn, resource, rows, group)
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page)}
        if store.get_setting(conn, store.TOTAL_COUNT_HEADER, True):
            headers["X-Total-Count"] = str(total)
    return JSONResponse(body, headers=headers)


def show_resource(request: Request, resource: str, record_id: int, api_key: str | None,
                  authorization: str | None, group: str) -> JSONResponse:
    admit(request, resource, api_key, authorization)
    group = response_group(resource, group)
    with request.app.state.pool.connection() as conn:
        row = store.get_row(conn, resource, record_id)
        if row is None:
            raise BoardError(404, f"Not Found: no {resource[:-1]} with id {record_id}")
        return JSONResponse(render_rows(conn, resource, [row], group)[0])


def register(resource: str) -> None:
    def index(request: Request, x_api_key: str | None = Header(default=None),
              authorization: str | None = Header(default=None)) -> JSONResponse:
        return list_resource(request, resource, x_api_key, authorization)

    def show(request: Request, record_id: int, response_group: str = "small",
             x_api_key: str | None = Header(default=None),
             authorization: str | None = Header(default=None)) -> JSONResponse:
        return show_resource(request, resource, record_id, x_api_key, authorization, response_group)

    api_router.add_api_route(f"/{resource}", index, methods=["GET"])
    if resource in SINGLE_READS:
        api_router.add_api_route(f"/{resource}/{{record_id}}", show, methods=["GET"])


for _resource in store.RESOURCES:
    register(_resource)


# --- Admin API (sandbox only) ----------------------------------------------------------------------------

admin_router = APIRouter()


class LimitsBody(BaseModel):
    daily_limit: int | None = None
    per_second_limit: bool | None = None
    total_count_header: bool | None = None


class FaultBody(BaseModel):
    action: str
    times: int = 1


def require_admin(request: Request, token: str) -> None:
    if not secrets.compare_digest(token.encode(), request.app.state.credentials["admin_token"].encode()):
        raise BoardError(403, f"Send the admin token (credentials.json) in {ADMIN_TOKEN_HEADER}")


def usage_body(request: Request) -> dict:
    with request.app.state.pool.connection() as conn:
        used, limit = store.usage(conn, request.app.state.credentials["api_key"])
        per_second = store.get_setting(conn, store.PER_SECOND_LIMIT, True)
        total_count_header = store.get_setting(conn, store.TOTAL_COUNT_HEADER, True)
    return {"used": used, "daily_limit": limit, "per_second_limit": per_second,
            "total_count_header": total_count_header}


@admin_router.get("/sandbox/admin/usage")
def admin_usage(request: Request, token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> dict:
    require_admin(request, token)
    return usage_body(request)


@admin_router.put("/sandbox/admin/limits")
def admin_limits(request: Request, body: LimitsBody,
                 token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> dict:
    require_admin(request, token)
    with request.app.state.pool.connection() as conn:
        if body.daily_limit is not None:
            store.set_setting(conn, store.DAILY_LIMIT, body.daily_limit)
        if body.per_second_limit is not None:
            store.set_setting(conn, store.PER_SECOND_LIMIT, body.per_second_limit)
        if body.total_count_header is not None:
            store.set_setting(conn, store.TOTAL_COUNT_HEADER, body.total_count_header)
    return usage_body(request)


@admin_router.post("/sandbox/admin/faults")
def admin_add_fault(request: Request, body: FaultBody,
                    token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> dict:
    require_admin(request, token)
    if body.action not in store.FAULT_ACTIONS or body.times < 1:
        raise BoardError(422, "Validation failed", [f"action must be one of {', '.join(store.FAULT_ACTIONS)} and "
                                                    f"times at least 1"])
    with request.app.state.pool.connection() as conn:
        store.add_fault(conn, body.action, body.times)
    return {"queued": body.times}


@admin_router.delete("/sandbox/admin/faults")
def admin_clear_faults(request: Request, token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> dict:
    require_admin(request, token)
    with request.app.state.pool.connection() as conn:
        store.clear_faults(conn)
    return {"queued": 0}


@admin_router.post("/sandbox/admin/usage/reset")
def admin_reset(request: Request, token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> dict:
    require_admin(request, token)
    with request.app.state.pool.connection() as conn:
        store.reset_usage(conn)
    with request.app.state.calls_lock:
        request.app.state.recent_calls.clear()
    return usage_body(request)


@admin_router.get("/sandbox/health")
def health(request: Request) -> dict:
    with request.app.state.pool.connection() as conn:
        conn.execute("select 1")
    return {"status": "ok"}
