"""The sandbox org's HTTPS API: the parts of Salesforce's SOAP login and REST API that our clients use.

Every call under `/services/` passes one gate, in Salesforce's order: scripted faults (503, row lock,
delay), then authentication (a live session from the SOAP login), then the daily API budget (every
authenticated call counts; the answer carries `Sforce-Limit-Info`). Errors are Salesforce's JSON list
`[{"message": …, "errorCode": …}]`. The SOQL query and Bulk API 2.0 endpoints come from `query_api`
and `bulk`; records, describe, replication (getUpdated/getDeleted) and sObject Collections are here.

`/sandbox/admin/` (not Salesforce) scripts faults, limits, sessions and custom fields for tests; it
needs the admin token and is not counted. Paths match with or without a trailing slash, as in Salesforce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from psycopg_pool import ConnectionPool
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from csops.sandbox.salesforce import bulk, context, query_api, store
from csops.sandbox.salesforce.errors import ApiError
from csops.sandbox.salesforce.objects import (
    NUMBER_TYPES,
    OPPORTUNITY_STAGES,
    Field,
    SObject,
    find_object,
    is_valid_id,
    make_id,
    parse_datetime,
    table_name,
    to_id18,
)
from csops.sandbox.salesforce.server import ADMIN_TOKEN_HEADER, PUBLIC_HOST

log = logging.getLogger(__name__)

ORGANIZATION_ID = make_id("00D", 1)
API_VERSIONS = {"57.0": "Spring '23", "58.0": "Summer '23", "59.0": "Winter '24", "60.0": "Spring '24",
                "61.0": "Summer '24", "62.0": "Winter '25"}
COLLECTION_LIMIT = 200
LOGIN_PATH_PREFIX = "/services/Soap/u/"
UNAUTHENTICATED_PATHS = {"/services/data", "/services/data/"}
SOAP_NAMESPACE = "{urn:partner.soap.sforce.com}"
ROLLED_BACK = ApiError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                       "Record rolled back because not all records were valid and the request was using AllOrNone "
                       "header")


def create_app(database_url: str, credentials: dict, *, public_host: str = PUBLIC_HOST,
               pool_size: int = 8) -> FastAPI:
    """The org's ASGI app over the database at `database_url`.

    `credentials` holds the integration user's `username`, `password`, `security_token` and the
    `admin_token` of the admin API. Logins get `serverUrl` on `public_host`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = ConnectionPool(database_url, min_size=1, max_size=pool_size, open=False, name="salesforce-sandbox")
        pool.open(wait=True, timeout=60)
        with pool.connection() as conn:
            store.ensure_schema(conn)
            app.state.integration_user_id = store.ensure_user(
                conn, credentials["username"], "連携ユーザ", credentials["username"], "CS Ops")
        app.state.pool = pool
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="csops Salesforce sandbox", lifespan=lifespan, redirect_slashes=False, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.credentials = credentials
    app.state.public_host = public_host
    app.state.objects_cache = None
    app.include_router(login_router)
    app.include_router(rest_router)
    app.include_router(query_api.router)
    app.include_router(bulk.router)
    app.include_router(admin_router)
    app.include_router(health_router)
    app.add_exception_handler(ApiError, render_api_error)
    app.add_exception_handler(StarletteHTTPException, render_http_error)
    app.middleware("http")(services_gate)
    app.middleware("http")(access_log)
    app.add_middleware(SlashTolerantPaths, router=app.router)
    return app


# --- Cross-cutting: paths, errors, the gate, the access log ----------------------------------------------


class SlashTolerantPaths:
    """Route `/x/` as `/x` (and back) when only the other form exists: clients add trailing slashes freely."""

    def __init__(self, app, router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and not self._routes(scope, scope["path"]):
            path = scope["path"]
            other = path[:-1] if path.endswith("/") else path + "/"
            if self._routes(scope, other):
                scope = {**scope, "path": other, "raw_path": other.encode()}
        await self.app(scope, receive, send)

    def _routes(self, scope, path: str) -> bool:
        probe = {**scope, "path": path}
        return any(route.matches(probe)[0] != Match.NONE for route in self.router.routes)


def error_response(error: ApiError, usage: tuple[int, int] | None = None) -> JSONResponse:
    response = JSONResponse(error.body(), status_code=error.status)
    if usage:
        response.headers["Sforce-Limit-Info"] = f"api-usage={usage[0]}/{usage[1]}"
    return response


async def render_api_error(_request: Request, error: ApiError) -> JSONResponse:
    return error_response(error)


async def render_http_error(request: Request, error: StarletteHTTPException) -> Response:
    if not request.url.path.startswith("/services/"):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)
    if error.status_code == 405:
        return error_response(ApiError(405, "METHOD_NOT_ALLOWED",
                                       f"HTTP Method '{request.method}' not allowed on {request.url.path}"))
    return error_response(ApiError(error.status_code, "NOT_FOUND", "The requested resource does not exist"))


FAULT_ERRORS = {
    "unavailable": ApiError(503, "SERVER_UNAVAILABLE", "Server unavailable"),
    "lock": ApiError(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
}
INVALID_SESSION = ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
LIMIT_EXCEEDED = ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


@dataclass
class Admission:
    """What the gate decided for one call."""

    fault: store.FaultRule | None = None
    user_id: str | None = None
    usage: tuple[int, int] | None = None
    error: ApiError | None = None


def session_id_of(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() in {"bearer", "oauth"} and token.strip() else None


def admit(pool: ConnectionPool, method: str, path: str, authorization: str | None) -> Admission:
    """Faults first, then the session, then the budget: one transaction per call."""
    login = path.startswith(LOGIN_PATH_PREFIX)
    with pool.connection() as conn:
        fault = store.next_fault(conn, method, path)
        if fault is not None and fault.action != "delay":
            usage = None if login else store.count_api_call(conn)[:2]
            return Admission(fault=fault, usage=usage, error=FAULT_ERRORS[fault.action])
        if login or path in UNAUTHENTICATED_PATHS:
            return Admission(fault=fault)
        session_id = session_id_of(authorization)
        user_id = store.session_user(conn, session_id) if session_id else None
        if user_id is None:
            return Admission(fault=fault, error=INVALID_SESSION)
        used, limit, allowed = store.count_api_call(conn)
        return Admission(fault=fault, user_id=user_id, usage=(used, limit), error=None if allowed else LIMIT_EXCEEDED)


async def services_gate(request: Request, call_next: Callable) -> Response:
    if not request.url.path.startswith("/services/"):
        return await call_next(request)
    admission = await run_in_threadpool(admit, request.app.state.pool, request.method, request.url.path,
                                        request.headers.get("authorization"))
    if admission.fault is not None and admission.fault.action == "delay":
        await asyncio.sleep(admission.fault.delay_seconds)
    if admission.error is not None:
        return error_response(admission.error, admission.usage)
    request.state.user_id = admission.user_id
    request.state.api_usage = admission.usage
    response = await call_next(request)
    if admission.usage:
        response.headers["Sforce-Limit-Info"] = f"api-usage={admission.usage[0]}/{admission.usage[1]}"
    return response


async def access_log(request: Request, call_next: Callable) -> Response:
    """One line per call: method, path (no query string, headers or body: they may carry secrets), status, time."""
    started = time.monotonic()
    response = await call_next(request)
    log.info("%s %s %s %.0f ms", request.method, request.url.path, response.status_code,
             (time.monotonic() - started) * 1000)
    return response


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ApiError(400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {error}") from None


JsonBody = Annotated[Any, Depends(json_body)]


def sobject(request: Request, name: str) -> SObject:
    obj = find_object(name, context.objects(request))
    if obj is None:
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: no sObject type {name!r}")
    return obj


def record_values(payload: Any, obj: SObject) -> dict:
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", f"A {obj.name} record is a JSON object of field names and values")
    return payload


# --- SOAP login ------------------------------------------------------------------------------------------

login_router = APIRouter()


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def soap_envelope(body: str, namespaces: str = "") -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope ' \
           f'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' \
           f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"{namespaces}><soapenv:Body>{body}</soapenv:Body>' \
           f'</soapenv:Envelope>'


def login_fault(code: str, message: str) -> Response:
    body = (f"<soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
            f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
            f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>")
    return Response(soap_envelope(body, ' xmlns:sf="urn:fault.partner.soap.sforce.com"'), status_code=500,
                    media_type="text/xml")


def login_request(body: bytes) -> tuple[str, str]:
    """The username and password (+ security token) of a SOAP login envelope."""
    root = ElementTree.fromstring(body)
    return (root.findtext(f".//{SOAP_NAMESPACE}username") or "", root.findtext(f".//{SOAP_NAMESPACE}password") or "")


def is_integration_user(credentials: dict, username: str, password: str) -> bool:
    expected = credentials["password"] + credentials["security_token"]
    return (secrets.compare_digest(username.lower().encode(), credentials["username"].lower().encode())
            & secrets.compare_digest(password.encode(), expected.encode()))


@login_router.post("/services/Soap/u/{version}")
def soap_login(request: Request, version: str, body: RawBody) -> Response:
    try:
        username, password = login_request(body)
    except ElementTree.ParseError:
        return login_fault("INVALID_LOGIN", "The login request is not a SOAP login envelope.")
    state = request.app.state
    if not is_integration_user(state.credentials, username, password):
        log.info("login refused for user %s", username)
        return login_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    with context.db(request) as conn:
        session_id = store.create_session(conn, state.integration_user_id, ORGANIZATION_ID)
    server = f"https://{state.public_host}/services/Soap"
    result = (f"<loginResponse><result><metadataServerUrl>{server}/m/{escape(version)}/{ORGANIZATION_ID[:15]}"
              f"</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
              f"<serverUrl>{server}/u/{escape(version)}/{ORGANIZATION_ID[:15]}</serverUrl>"
              f"<sessionId>{escape(session_id)}</sessionId><userId>{state.integration_user_id}</userId>"
              f"<userInfo><organizationId>{ORGANIZATION_ID}</organizationId><organizationName>csops sandbox"
              f"</organizationName><userEmail>{escape(state.credentials['username'])}</userEmail>"
              f"<userId>{state.integration_user_id}</userId><userName>{escape(state.credentials['username'])}"
              f"</userName></userInfo></result></loginResponse>")
    return Response(soap_envelope(result, ' xmlns="urn:partner.soap.sforce.com"'), media_type="text/xml")


# --- Describe --------------------------------------------------------------------------------------------

SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "date": "xsd:date",
              "datetime": "xsd:dateTime", "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
              "int": "xsd:int"}
NUMBER_SHAPES = {"double": (18, 6), "currency": (18, 2), "percent": (5, 2)}  # precision, scale


def defaulted_on_create(obj: SObject, f: Field) -> bool:
    return (not f.createable and not f.updateable and not f.nillable) or f.name == "OwnerId" or (
        (obj.name, f.name) in store.CREATE_DEFAULTS) or (f.type == "boolean" and not f.nillable)


def describe_field(obj: SObject, f: Field) -> dict:
    precision, scale = NUMBER_SHAPES.get(f.type, (0, 0))
    return {
        "name": f.name, "label": f.label, "type": f.type, "soapType": SOAP_TYPES.get(f.type, "xsd:string"),
        "nillable": f.nillable, "externalId": f.external_id, "unique": f.unique, "idLookup": f.name == "Id"
        or f.external_id, "createable": f.createable, "updateable": f.updateable, "custom": f.custom,
        "calculated": False, "autoNumber": False, "caseSensitive": False, "nameField": f.name == "Name",
        "defaultedOnCreate": defaulted_on_create(obj, f), "filterable": True, "sortable": f.type != "textarea",
        "groupable": f.type not in NUMBER_TYPES | {"textarea", "datetime"}, "length": f.length,
        "byteLength": f.length * 3, "precision": precision, "scale": scale, "digits": 9 if f.type == "int" else 0,
        "referenceTo": [f.reference_to] if f.reference_to else [], "relationshipName": f.relationship_name,
        "picklistValues": [{"active": True, "defaultValue": False, "label": value, "value": value, "validFor": None}
                           for value in picklist_values(obj, f)],
        "restrictedPicklist": False,
    }


def picklist_values(obj: SObject, f: Field) -> tuple[str, ...]:
    if obj.name == "Opportunity" and f.name == "StageName":
        return tuple(OPPORTUNITY_STAGES)
    return f.picklist


def object_urls(obj: SObject, version: str) -> dict:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def describe_basic(obj: SObject, version: str) -> dict:
    return {"name": obj.name, "label": obj.label, "labelPlural": obj.label_plural, "keyPrefix": obj.key_prefix,
            "custom": obj.custom, "customSetting": False, "queryable": True, "retrieveable": True,
            "replicateable": True, "searchable": True, "createable": True, "updateable": True, "deletable": True,
            "undeletable": True, "layoutable": True, "triggerable": True, "feedEnabled": False,
            "urls": object_urls(obj, version)}


def child_relationships(obj: SObject, objects: dict[str, SObject]) -> list[dict]:
    return [{"childSObject": child.name, "field": f.name, "relationshipName": None, "cascadeDelete": False,
             "deprecatedAndHidden": False, "restrictedDelete": False}
            for child in objects.values() for f in child.fields if f.reference_to == obj.name]


# --- REST: versions, resources, limits, describe ---------------------------------------------------------

rest_router = APIRouter(prefix="/services/data")


@rest_router.get("")
def versions() -> JSONResponse:
    return JSONResponse([{"label": label, "url": f"/services/data/v{version}", "version": version}
                         for version, label in API_VERSIONS.items()])


@rest_router.get("/v{version}")
def resources(version: str) -> JSONResponse:
    base = f"/services/data/v{version}"
    names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs/ingest", "jobs/query")
    return JSONResponse({name: f"{base}/{name}" for name in names})


@rest_router.get("/v{version}/limits")
def limits(request: Request) -> JSONResponse:
    used, limit = request.state.api_usage
    return JSONResponse({"DailyApiRequests": {"Max": limit, "Remaining": max(limit - used, 0)}})


@rest_router.get("/v{version}/sobjects")
def describe_global(request: Request, version: str) -> JSONResponse:
    return JSONResponse({"encoding": "UTF-8", "maxBatchSize": COLLECTION_LIMIT,
                         "sobjects": [describe_basic(obj, version) for obj in context.objects(request).values()]})


@rest_router.get("/v{version}/sobjects/{name}")
def sobject_info(request: Request, version: str, name: str) -> JSONResponse:
    obj = sobject(request, name)
    columns = '"Id", "Name"' if obj.field("Name") else '"Id"'
    with context.db(request) as conn:
        rows = conn.execute(f'select {columns} from {table_name(obj)} where not "IsDeleted" '
                            'order by "LastModifiedDate" desc, "Id" limit 10').fetchall()
    recent = [{"attributes": {"type": obj.name, "url": store.record_url(obj, row[0], version)},
               **dict(zip(("Id", "Name"), row, strict=False))} for row in rows]
    return JSONResponse({"objectDescribe": describe_basic(obj, version), "recentItems": recent})


@rest_router.get("/v{version}/sobjects/{name}/describe")
def describe_object(request: Request, version: str, name: str) -> JSONResponse:
    objects = context.objects(request)
    obj = sobject(request, name)
    return JSONResponse({**describe_basic(obj, version), "fields": [describe_field(obj, f) for f in obj.fields],
                         "childRelationships": child_relationships(obj, objects)})


# --- REST: replication -----------------------------------------------------------------------------------


def replication_bound(value: str | None, name: str) -> datetime:
    if not value:
        raise ApiError(400, "MALFORMED_QUERY", f"Missing parameter {name!r}: give an ISO datetime with a time zone")
    try:
        return parse_datetime(value)
    except ValueError:
        raise ApiError(400, "MALFORMED_QUERY", f"{name}={value!r} is not a datetime with a time zone, e.g. "
                                               "2026-11-20T00:00:00+00:00") from None


@rest_router.get("/v{version}/sobjects/{name}/updated")
def get_updated(request: Request, name: str, start: str | None = None, end: str | None = None) -> JSONResponse:
    obj = sobject(request, name)
    with context.db(request) as conn:
        return JSONResponse(store.updated_ids(conn, obj, replication_bound(start, "start"),
                                              replication_bound(end, "end")))


@rest_router.get("/v{version}/sobjects/{name}/deleted")
def get_deleted(request: Request, name: str, start: str | None = None, end: str | None = None) -> JSONResponse:
    obj = sobject(request, name)
    with context.db(request) as conn:
        return JSONResponse(store.deleted_records(conn, obj, replication_bound(start, "start"),
                                                  replication_bound(end, "end")))


# --- REST: records ---------------------------------------------------------------------------------------


@rest_router.post("/v{version}/sobjects/{name}")
def create(request: Request, name: str, payload: JsonBody) -> JSONResponse:
    obj = sobject(request, name)
    with context.db(request) as conn:
        record_id = store.insert_record(conn, obj, record_values(payload, obj), context.user_id(request))
    return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)


@rest_router.get("/v{version}/sobjects/{name}/{record_id}")
def read(request: Request, version: str, name: str, record_id: str, fields: str | None = None) -> JSONResponse:
    obj = sobject(request, name)
    wanted = [part.strip() for part in fields.split(",") if part.strip()] if fields else None
    with context.db(request) as conn:
        record = store.get_record(conn, obj, record_id, wanted)
    record["attributes"]["url"] = store.record_url(obj, record["Id"], version)
    return JSONResponse(record)


@rest_router.patch("/v{version}/sobjects/{name}/{record_id}")
def update(request: Request, name: str, record_id: str, payload: JsonBody) -> Response:
    obj = sobject(request, name)
    with context.db(request) as conn:
        store.update_record(conn, obj, record_id, record_values(payload, obj), context.user_id(request))
    return Response(status_code=204)


@rest_router.delete("/v{version}/sobjects/{name}/{record_id}")
def delete(request: Request, name: str, record_id: str) -> Response:
    obj = sobject(request, name)
    with context.db(request) as conn:
        store.delete_record(conn, obj, record_id, context.user_id(request))
    return Response(status_code=204)


def multiple_choices(obj: SObject, ids: list[str], version: str) -> JSONResponse:
    return JSONResponse([store.record_url(obj, record_id, version) for record_id in ids], status_code=300)


@rest_router.get("/v{version}/sobjects/{name}/{field}/{value}")
def read_by_external_id(request: Request, version: str, name: str, field: str, value: str,
                        fields: str | None = None) -> JSONResponse:
    obj = sobject(request, name)
    wanted = [part.strip() for part in fields.split(",") if part.strip()] if fields else None
    with context.db(request) as conn:
        ids = store.external_id_matches(conn, obj, field, value)
        if len(ids) > 1:
            return multiple_choices(obj, ids, version)
        if not ids:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: no {obj.name} with "
                                             f"{field} = {value}")
        record = store.get_record(conn, obj, ids[0], wanted)
    record["attributes"]["url"] = store.record_url(obj, record["Id"], version)
    return JSONResponse(record)


@rest_router.patch("/v{version}/sobjects/{name}/{field}/{value}")
def upsert(request: Request, version: str, name: str, field: str, value: str,
           payload: JsonBody) -> JSONResponse:
    obj = sobject(request, name)
    try:
        with context.db(request) as conn:
            record_id, created = store.upsert_record(conn, obj, field, value, record_values(payload, obj),
                                                     context.user_id(request))
    except store.MultipleMatches as matches:
        return multiple_choices(obj, matches.ids, version)
    return JSONResponse({"id": record_id, "success": True, "errors": [], "created": created},
                        status_code=201 if created else 200)


# --- REST: sObject Collections ---------------------------------------------------------------------------


def error_entry(error: ApiError) -> dict:
    return {"statusCode": error.error_code, "message": error.message, "fields": error.fields}


def collection_records(payload: Any) -> tuple[list, bool]:
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise ApiError(400, "JSON_PARSER_ERROR", 'Send {"allOrNone": …, "records": [ … ]}')
    check_collection_size(len(payload["records"]))
    return payload["records"], bool(payload.get("allOrNone", False))


def check_collection_size(count: int) -> None:
    if count > COLLECTION_LIMIT:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_LIMIT} "
                                                 f"records into this call (got {count}); split the request")


def record_type(request: Request, record: Any) -> SObject:
    if not isinstance(record, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Each record is a JSON object")
    name = (record.get("attributes") or {}).get("type")
    if not name:
        raise ApiError(400, "INVALID_TYPE", 'Must send a concrete entity type: add "attributes": {"type": …}')
    obj = find_object(name, context.objects(request))
    if obj is None:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
    return obj


def run_collection(request: Request, items: list, all_or_none: bool,
                   action: Callable[[psycopg.Connection, Any], str | tuple[str, bool]],
                   item_id: Callable[[Any], str | None], *, upsert: bool = False) -> list:
    """Apply `action` to each item in its own savepoint; with allOrNone one failure rolls every item back.

    `action` returns the record's Id, or (Id, created) for an upsert, whose results (UpsertResult) also say
    `created` (false for a failed item).
    """
    results = []
    with context.db(request) as conn, conn.transaction() as batch:
        for item in items:
            try:
                with conn.transaction():
                    outcome = action(conn, item)
                record_id, created = outcome if isinstance(outcome, tuple) else (outcome, False)
                results.append({"id": record_id, "success": True, "errors": [],
                                **({"created": created} if upsert else {})})
            except ApiError as error:
                results.append({"id": item_id(item), "success": False, "errors": [error_entry(error)],
                                **({"created": False} if upsert else {})})
        if all_or_none and not all(result["success"] for result in results):
            raise psycopg.Rollback(batch)
    if all_or_none and not all(result["success"] for result in results):
        return [result if not result["success"] else
                {"id": item_id(item), "success": False, "errors": [error_entry(ROLLED_BACK)],
                 **({"created": False} if upsert else {})}
                for item, result in zip(items, results, strict=True)]
    return results


def given_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    return record.get("id") or record.get("Id")


@rest_router.post("/v{version}/composite/sobjects")
def collection_create(request: Request, payload: JsonBody) -> JSONResponse:
    records, all_or_none = collection_records(payload)
    user = context.user_id(request)

    def create_one(conn: psycopg.Connection, record: Any) -> str:
        return store.insert_record(conn, record_type(request, record), record, user)

    return JSONResponse(run_collection(request, records, all_or_none, create_one, lambda _record: None))


@rest_router.patch("/v{version}/composite/sobjects")
def collection_update(request: Request, payload: JsonBody) -> JSONResponse:
    records, all_or_none = collection_records(payload)
    user = context.user_id(request)

    def update_one(conn: psycopg.Connection, record: Any) -> str:
        obj = record_type(request, record)
        record_id = given_id(record)
        if not record_id:
            raise ApiError(400, "MISSING_ARGUMENT", 'Id not specified in an update call: add "id" to the record')
        values = {key: value for key, value in record.items() if key not in {"id", "Id"}}
        store.update_record(conn, obj, record_id, values, user)
        return to_id18(record_id)

    return JSONResponse(run_collection(request, records, all_or_none, update_one, given_id))


@rest_router.patch("/v{version}/composite/sobjects/{name}/{field}")
def collection_upsert(request: Request, name: str, field: str, payload: JsonBody) -> JSONResponse:
    """Upsert up to 200 records of one object by an external id field (UpsertResult per record, in order).

    As in Salesforce, only external ids are accepted (not Id: update by Id goes through PATCH
    /composite/sobjects), every record names the URI's object in `attributes.type` and carries its key.
    """
    obj = sobject(request, name)
    records, all_or_none = collection_records(payload)
    key = obj.field(field)
    if key is None or not key.external_id:
        raise ApiError(400, "INVALID_FIELD", f"Field name provided, {field} is not an External ID or indexed field "
                                             f"for {obj.name} (external ids of {obj.name}: "
                                             f"{', '.join(f.name for f in obj.external_id_fields) or 'none'})")
    user = context.user_id(request)

    def upsert_one(conn: psycopg.Connection, record: Any) -> tuple[str, bool]:
        if record_type(request, record).name != obj.name:
            raise ApiError(400, "INVALID_TYPE", f"This request upserts {obj.name} records only: the record's "
                                                f"attributes.type is {record['attributes']['type']!r}")
        if given_id(record):
            raise ApiError(400, "INVALID_FIELD", f"Don't set the Id of a record upserted by {key.name}: leave "
                                                 "Id out and give the external id", ["Id"])
        value = next((item for name, item in record.items() if name.lower() == key.name.lower()), None)
        if value in (None, ""):
            raise ApiError(400, "MISSING_ARGUMENT", f"{key.name} not specified: every record upserted by it needs "
                                                    "a value", [key.name])
        try:
            return store.upsert_record(conn, obj, key.name, value, record, user)
        except store.MultipleMatches as matches:
            raise ApiError(400, "DUPLICATE_EXTERNAL_ID", f"{key.name}: more than one record found for external "
                                                         f"id field: {matches.ids}", [key.name]) from None

    return JSONResponse(run_collection(request, records, all_or_none, upsert_one, lambda _record: None,
                                       upsert=True))


@rest_router.delete("/v{version}/composite/sobjects")
def collection_delete(request: Request, ids: str = "", allOrNone: str = "false") -> JSONResponse:  # noqa: N803
    record_ids = [part.strip() for part in ids.split(",") if part.strip()]
    check_collection_size(len(record_ids))
    user = context.user_id(request)
    by_prefix = {obj.key_prefix: obj for obj in context.objects(request).values()}

    def delete_one(conn: psycopg.Connection, record_id: str) -> str:
        if not is_valid_id(record_id):
            raise ApiError(400, "MALFORMED_ID", f"malformed id {record_id}")
        obj = by_prefix.get(record_id[:3])
        if obj is None:
            raise ApiError(404, "NOT_FOUND", f"No object has Ids starting {record_id[:3]} ({record_id})")
        store.delete_record(conn, obj, record_id, user)
        return to_id18(record_id)

    return JSONResponse(run_collection(request, record_ids, allOrNone.lower() == "true", delete_one, lambda i: i))


# --- Admin API (sandbox only) ----------------------------------------------------------------------------


def require_admin(request: Request, token: str = Header(default="", alias=ADMIN_TOKEN_HEADER)) -> None:
    if not secrets.compare_digest(token.encode(), request.app.state.credentials["admin_token"].encode()):
        raise StarletteHTTPException(403, f"Send the admin token (credentials.json) in {ADMIN_TOKEN_HEADER}")


admin_router = APIRouter(prefix="/sandbox/admin", dependencies=[Depends(require_admin)])
health_router = APIRouter()


class FaultBody(BaseModel):
    method: str = "*"
    path_regex: str
    action: str
    delay_seconds: float = 0.0
    times: int | None = None
    rate: float | None = None
    seed: int = 0


class LimitBody(BaseModel):
    daily_limit: int


class LifetimeBody(BaseModel):
    seconds: int


class CustomFieldBody(BaseModel):
    object: str
    field: dict


@admin_router.post("/faults")
def admin_add_fault(request: Request, body: FaultBody) -> dict:
    try:
        rule = store.FaultRule(**body.model_dump())
    except (ValueError, TypeError) as error:
        raise StarletteHTTPException(400, str(error)) from None
    with context.db(request) as conn:
        return {"id": store.add_fault(conn, rule)}


@admin_router.get("/faults")
def admin_faults(request: Request) -> dict:
    with context.db(request) as conn:
        return {"faults": store.list_faults(conn)}


@admin_router.delete("/faults")
def admin_clear_faults(request: Request) -> dict:
    with context.db(request) as conn:
        store.clear_faults(conn)
    return {}


@admin_router.put("/limits")
def admin_set_limit(request: Request, body: LimitBody) -> dict:
    with context.db(request) as conn:
        store.set_setting(conn, store.DAILY_LIMIT, body.daily_limit)
        used, limit = store.api_usage(conn)
    return {"used": used, "limit": limit}


@admin_router.post("/limits/reset")
def admin_reset_usage(request: Request) -> dict:
    with context.db(request) as conn:
        store.reset_api_usage(conn)
        used, limit = store.api_usage(conn)
    return {"used": used, "limit": limit}


@admin_router.get("/limits")
def admin_usage(request: Request) -> dict:
    with context.db(request) as conn:
        used, limit = store.api_usage(conn)
    return {"used": used, "limit": limit}


@admin_router.post("/sessions/expire")
def admin_expire_sessions(request: Request) -> dict:
    with context.db(request) as conn:
        return {"expired": store.expire_sessions(conn)}


@admin_router.put("/sessions/lifetime")
def admin_session_lifetime(request: Request, body: LifetimeBody) -> dict:
    with context.db(request) as conn:
        store.set_setting(conn, store.SESSION_LIFETIME, body.seconds)
    return {"seconds": body.seconds}


@admin_router.post("/custom-fields")
def admin_add_custom_field(request: Request, body: CustomFieldBody) -> dict:
    try:
        new_field = store.field_from_json(body.field)
    except (ValueError, TypeError) as error:
        raise StarletteHTTPException(400, f"Not a field definition: {error}") from None
    with context.db(request) as conn:
        store.add_custom_field(conn, body.object, new_field)
    context.forget_objects(request)
    return {"object": body.object, "field": new_field.name}


@health_router.get("/sandbox/health")
def health(request: Request) -> dict:
    with context.db(request) as conn:
        conn.execute("select 1")
    return {"status": "ok"}

