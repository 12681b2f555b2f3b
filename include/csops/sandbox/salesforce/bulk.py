"""Bulk API 2.0 of the sandbox org: ingest jobs (CSV in, per-row results out) and query jobs (CSV pages).

Ingest: `POST /jobs/ingest` opens a job (insert, update, upsert or delete on one object), `PUT
/jobs/ingest/{id}/batches` uploads its CSV once, `PATCH {"state": "UploadComplete"}` processes it: every row
on its own through the record store (one bad row fails alone), in chunks committed as they finish. The job
then reports JobComplete with numberRecordsProcessed / numberRecordsFailed, and `successfulResults`,
`failedResults` and `unprocessedrecords` give the rows back as CSV with `sf__Id`, `sf__Created`, `sf__Error`.
A header naming an unknown field fails the whole job (state Failed, every row unprocessed), as in Salesforce.

Query: `POST /jobs/query` (query or queryAll) runs the SOQL at once and keeps the record Ids (in Id order) as
a cursor; SOQL with ORDER BY, COUNT() or OFFSET is refused, as Salesforce documents for Bulk API 2.0 (ORDER BY
disables PK chunking); `GET /jobs/query/{id}/results?locator=&maxRecords=` streams one page of CSV from Postgres with
`Sforce-Locator` (the next page, or "null") and `Sforce-NumberOfRecords` headers.

Jobs live in `sf_meta.bulk_jobs`, uploads in `sf_meta.bulk_job_uploads`, row results in
`sf_meta.bulk_job_results`; `ensure_schema` creates them (and the query cursor tables).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from psycopg import sql
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from csops.sandbox.salesforce import context, soql, store
from csops.sandbox.salesforce.errors import ApiError
from csops.sandbox.salesforce.objects import SObject, find_object, format_datetime, make_id, table_name, to_id18

JOB_KEY_PREFIX = "750"  # Salesforce's job Ids start with this prefix
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete")
QUERY_OPERATIONS = ("query", "queryAll")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
CHUNK_ROWS = 1000  # rows processed (and committed) per transaction
QUERY_RESULTS_LIFETIME = timedelta(days=7)  # as long as Salesforce keeps query job results
DEFAULT_MAX_RECORDS = 100_000
STREAM_ROWS = 2000  # CSV rows fetched from Postgres per round trip while streaming a page
NULL_MARKER = "#N/A"  # a CSV value that sets a field to null (an empty value leaves it unchanged)

SCHEMA_SQL = """
create schema if not exists sf_meta;
create sequence if not exists sf_meta.bulk_job_seq minvalue 0 start 0;
create table if not exists sf_meta.bulk_jobs (
    id text primary key,
    job_type text not null,
    operation text not null,
    object text not null,
    external_id_field text,
    query text,
    state text not null,
    line_ending text not null,
    column_delimiter text not null,
    api_version text not null,
    created_by_id text not null,
    created_date timestamptz not null default now(),
    system_modstamp timestamptz not null default now(),
    columns text[],
    records_processed integer not null default 0,
    records_failed integer not null default 0,
    processing_ms bigint not null default 0,
    error_message text
);
create table if not exists sf_meta.bulk_job_uploads (
    job_id text primary key,
    data text not null
);
create table if not exists sf_meta.bulk_job_results (
    job_id text not null,
    row_number integer not null,
    succeeded boolean not null,
    record_id text,
    created boolean,
    error text,
    "values" text[] not null,
    primary key (job_id, row_number)
);
"""


def ensure_schema(conn) -> None:
    """Create the Bulk API job tables and the query cursor tables in `sf_meta` if missing (idempotent)."""
    soql.ensure_schema(conn)
    conn.execute(SCHEMA_SQL)


_schema_lock = threading.Lock()


def tables_ready(request: Request) -> None:
    """Make sure this app's database has the job and cursor tables (checked once per app)."""
    state = request.app.state
    if getattr(state, "bulk_tables_ready", False):
        return
    with _schema_lock:
        if not getattr(state, "bulk_tables_ready", False):
            with context.db(request) as conn:
                ensure_schema(conn)
            state.bulk_tables_ready = True


router = APIRouter(dependencies=[Depends(tables_ready)])


# --- Jobs ---------------------------------------------------------------------------------------------------


def job_row(conn, job_id: str, job_type: str) -> dict:
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute("select * from sf_meta.bulk_jobs where id = %s and job_type = %s",
                             (job_id, job_type)).fetchone()
    if row is None:
        kind = "ingest" if job_type == "V2Ingest" else "query"
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: no {kind} job {job_id}")
    return row


def job_info(row: dict, *, full: bool = True) -> dict:
    """A job as Salesforce describes it (the list of jobs shows the short form)."""
    info = {
        "id": row["id"], "operation": row["operation"], "object": row["object"],
        "createdById": row["created_by_id"], "createdDate": format_datetime(row["created_date"]),
        "systemModstamp": format_datetime(row["system_modstamp"]), "state": row["state"],
    }
    if row["external_id_field"]:
        info["externalIdFieldName"] = row["external_id_field"]
    info.update({"concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(row["api_version"]),
                 "jobType": row["job_type"], "lineEnding": row["line_ending"],
                 "columnDelimiter": row["column_delimiter"]})
    if row["job_type"] == "V2Ingest":
        info["contentUrl"] = f"services/data/v{row['api_version']}/jobs/ingest/{row['id']}/batches"
    if full:
        info["numberRecordsProcessed"] = row["records_processed"]
        if row["job_type"] == "V2Ingest":
            info["numberRecordsFailed"] = row["records_failed"]
        info.update({"retries": 0, "totalProcessingTime": row["processing_ms"],
                     "apiActiveProcessingTime": row["processing_ms"], "apexProcessingTime": 0})
        if row["job_type"] == "V2Query":
            info["isPkChunkingSupported"] = False
        if row["error_message"]:
            info["errorMessage"] = row["error_message"]
    return info


@dataclass(frozen=True)
class JobRequest:
    """The options of a job creation request, checked."""

    operation: str
    object_name: str | None
    external_id_field: str | None
    query: str | None
    line_ending: str
    column_delimiter: str


async def json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not a JSON object: send e.g. "
                                                 '{"object": "Account", "operation": "insert"} or {"state": "Aborted"}')
    return body


async def job_request(request: Request, operations: tuple[str, ...]) -> JobRequest:
    body = await json_body(request)
    operation = body.get("operation")
    if operation not in operations:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation {operation!r}: use one of "
                                          f"{', '.join(operations)}")
    content_type = body.get("contentType", "CSV")
    if content_type != "CSV":
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : contentType {content_type!r} is not supported: use CSV")
    line_ending = body.get("lineEnding", "LF")
    delimiter = body.get("columnDelimiter", "COMMA")
    if line_ending not in LINE_ENDINGS or delimiter not in DELIMITERS:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : lineEnding {line_ending!r} / columnDelimiter "
                                          f"{delimiter!r}: use LF or CRLF and one of {', '.join(DELIMITERS)}")
    return JobRequest(operation, body.get("object"), body.get("externalIdFieldName"), body.get("query"),
                      line_ending, delimiter)


def insert_job(conn, job_type: str, options: JobRequest, object_name: str, version: str, user: str,
               state: str) -> dict:
    number = conn.execute("select nextval('sf_meta.bulk_job_seq')").fetchone()[0]
    job_id = make_id(JOB_KEY_PREFIX, number)
    conn.execute(
        "insert into sf_meta.bulk_jobs (id, job_type, operation, object, external_id_field, query, state, "
        "line_ending, column_delimiter, api_version, created_by_id) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (job_id, job_type, options.operation, object_name, options.external_id_field, options.query, state,
         options.line_ending, options.column_delimiter, version, user))
    return job_row(conn, job_id, job_type)


def set_job(conn, job_id: str, **changes) -> None:
    columns = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
                                 for name in changes)
    conn.execute(sql.SQL("update sf_meta.bulk_jobs set {}, system_modstamp = now() where id = %(job_id)s")
                 .format(columns), {**changes, "job_id": job_id})


def delete_job(conn, job_id: str) -> None:
    conn.execute("delete from sf_meta.bulk_job_results where job_id = %s", (job_id,))
    conn.execute("delete from sf_meta.bulk_job_uploads where job_id = %s", (job_id,))
    soql.close_cursor(conn, job_id)
    conn.execute("delete from sf_meta.bulk_jobs where id = %s", (job_id,))


def list_jobs(request: Request, job_type: str) -> JSONResponse:
    with context.db(request) as conn, conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute("select * from sf_meta.bulk_jobs where job_type = %s order by created_date, id",
                              (job_type,)).fetchall()
    return JSONResponse({"done": True, "records": [job_info(row, full=False) for row in rows],
                         "nextRecordsUrl": None})


def change_state(request: Request, job_id: str, job_type: str, wanted: str | None) -> dict:
    """Abort a job (any type) that has not finished; returns the job as it is now."""
    with context.db(request) as conn:
        row = job_row(conn, job_id, job_type)
        if wanted != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", f"Cannot change the state of job {job_id} to {wanted!r}: "
                                                   "a query job can only be Aborted")
        if row["state"] in TERMINAL_STATES:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {row['state']} already and cannot be aborted")
        set_job(conn, job_id, state="Aborted")
        return job_info(job_row(conn, job_id, job_type))


def remove_job(request: Request, job_id: str, job_type: str) -> Response:
    with context.db(request) as conn:
        row = job_row(conn, job_id, job_type)
        if row["state"] not in TERMINAL_STATES:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {row['state']}: close or abort it before "
                                                   "deleting it")
        delete_job(conn, job_id)
    return Response(status_code=204)


# --- Ingest ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A CSV header column: a field of the object, or a parent found by its external id (`Account__r.Key__c`)."""

    header: str
    field_name: str  # the object's field that receives the value
    parent: SObject | None = None
    parent_key: str | None = None  # the parent's external id field (or Id)


def resolve_columns(obj: SObject, header: list[str], objects: dict[str, SObject]) -> list[Column]:
    """The header's columns resolved against the object; an unknown one raises with Salesforce's message."""
    columns = []
    for name in header:
        relationship, _, key = name.partition(".")
        if key:
            reference = obj.relationship(relationship)
            parent = find_object(reference.reference_to, objects) if reference else None
            parent_field = parent.field(key) if parent else None
            if parent_field is None or not (parent_field.external_id or parent_field.name == "Id"):
                raise ValueError(f"InvalidBatch : Field name not found : {name} (a parent is named by its "
                                 "relationship and an external id field, e.g. Account__r.Nexpro_Tenant_Id__c)")
            columns.append(Column(name, reference.name, parent, parent_field.name))
            continue
        f = obj.field(name)
        if f is None:
            raise ValueError(f"InvalidBatch : Field name not found : {name}")
        columns.append(Column(name, f.name))
    return columns


def row_values(conn, columns: list[Column], cells: list[str]) -> dict:
    """A CSV row as field values: empty cells are left out, `#N/A` sets null, parents found by external id."""
    values = {}
    for column, cell in zip(columns, cells, strict=True):
        if cell == "":
            continue
        if cell == NULL_MARKER:
            values[column.field_name] = None
            continue
        if column.parent is None:
            values[column.field_name] = cell
            continue
        found = conn.execute(sql.SQL('select "Id" from {} where {} = %s and not "IsDeleted"').format(
            sql.SQL(table_name(column.parent)), sql.Identifier(column.parent_key)), (cell,)).fetchall()
        if len(found) != 1:
            problem = "not found" if not found else "matches more than one record"
            raise ApiError(400, "INVALID_FIELD", f"Foreign key external ID: {cell} {problem} for field "
                                                 f"{column.parent_key} in entity {column.parent.name}",
                           [column.field_name])
        values[column.field_name] = found[0][0]
    return values


def process_row(conn, job: dict, obj: SObject, columns: list[Column], cells: list[str],
                user: str) -> tuple[str | None, bool]:
    """Apply one CSV row; returns (record Id, created). Raises ApiError when the row is rejected."""
    if len(cells) != len(columns):
        raise ApiError(400, "INVALID_FIELD", f"The row has {len(cells)} values but the header has {len(columns)} "
                                             "columns: quote values that contain the delimiter")
    values = row_values(conn, columns, cells)
    operation = job["operation"]
    if operation == "insert":
        return store.insert_record(conn, obj, values, user), True
    if operation == "upsert":
        external = obj.field(job["external_id_field"]).name
        key = next((cell for column, cell in zip(columns, cells, strict=True) if column.field_name == external), "")
        if not key:
            raise ApiError(400, "MISSING_ARGUMENT", f"{external} not specified: every upsert row needs a value in "
                                                    f"the {external} column", [external])
        return store.upsert_record(conn, obj, external, key, values, user)
    record_id = values.pop("Id", None)
    if not record_id:
        raise ApiError(400, "MISSING_ARGUMENT", f"Id not specified in an {operation} call: every row needs the "
                                                "record's Id", ["Id"])
    if operation == "update":
        store.update_record(conn, obj, record_id, values, user)
    else:
        store.delete_record(conn, obj, record_id, user)
    return to_id18(record_id), False


def error_text(error: ApiError) -> str:
    """Salesforce's sf__Error: `CODE:message:fields --`."""
    return f"{error.error_code}:{error.message}:{','.join(error.fields)} --"


def read_csv(data: str, job: dict) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(data.lstrip("\ufeff"), newline=""), delimiter=DELIMITERS[job["column_delimiter"]])


def check_ingest_options(objects: dict[str, SObject], options: JobRequest) -> SObject:
    obj = find_object(options.object_name or "", objects)
    if obj is None:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {options.object_name}")
    if options.operation == "upsert":
        f = obj.field(options.external_id_field or "")
        if f is None or not (f.external_id or f.name == "Id"):
            raise ApiError(400, "INVALIDJOB",
                           f"InvalidJob : Field name provided, {options.external_id_field}, does not match an "
                           f"External ID or Salesforce Id for {obj.name}: name an external id field in "
                           "externalIdFieldName")
    return obj


def process_ingest(request: Request, job_id: str) -> None:
    """Run an uploaded ingest job row by row, committing every CHUNK_ROWS rows."""
    started = time.monotonic()
    with context.db(request) as conn:
        job = job_row(conn, job_id, "V2Ingest")
        upload = conn.execute("select data from sf_meta.bulk_job_uploads where job_id = %s", (job_id,)).fetchone()
        set_job(conn, job_id, state="InProgress")
    objects = context.objects(request)
    obj = find_object(job["object"], objects)
    rows = read_csv(upload[0] if upload else "", job)
    header = next(rows, [])
    try:
        if not header:
            raise ValueError("InvalidBatch : No data was uploaded for this job: PUT the CSV to the job's contentUrl "
                             "before closing it")
        columns = resolve_columns(obj, header, objects)
    except ValueError as error:
        with context.db(request) as conn:
            set_job(conn, job_id, state="Failed", error_message=str(error), columns=header)
        return
    with context.db(request) as conn:
        set_job(conn, job_id, columns=header)
    number, processed, failed, chunk = 0, 0, 0, []
    for cells in rows:
        if not cells:
            continue  # a blank line
        number += 1
        chunk.append((number, cells))
        if len(chunk) == CHUNK_ROWS:
            processed, failed = run_chunk(request, job, obj, columns, chunk, processed, failed)
            chunk = []
    processed, failed = run_chunk(request, job, obj, columns, chunk, processed, failed)
    with context.db(request) as conn:
        set_job(conn, job_id, state="JobComplete", processing_ms=int((time.monotonic() - started) * 1000))


def run_chunk(request: Request, job: dict, obj: SObject, columns: list[Column], chunk: list[tuple[int, list[str]]],
              processed: int, failed: int) -> tuple[int, int]:
    """Apply a chunk of rows in one transaction (each row in its own savepoint) and record every outcome."""
    user = context.user_id(request)
    results = []
    with context.db(request) as conn:
        for number, cells in chunk:
            try:
                with conn.transaction():
                    record_id, created = process_row(conn, job, obj, columns, cells, user)
                results.append((job["id"], number, True, record_id, created, None, cells))
            except ApiError as error:
                failed += 1
                results.append((job["id"], number, False, None, None, error_text(error), cells))
            except psycopg.Error as error:  # a value the database refused: this row fails, the others go on
                failed += 1
                unknown = ApiError(500, "UNKNOWN_EXCEPTION", f"the database refused the row: {error}")
                results.append((job["id"], number, False, None, None, error_text(unknown), cells))
            processed += 1
        with conn.cursor() as cursor:
            cursor.executemany("insert into sf_meta.bulk_job_results (job_id, row_number, succeeded, record_id, "
                               'created, error, "values") values (%s, %s, %s, %s, %s, %s, %s)', results)
        set_job(conn, job["id"], records_processed=processed, records_failed=failed)
    return processed, failed


def results_csv(request: Request, job_id: str, kind: str) -> Response:
    """successfulResults, failedResults or unprocessedrecords as CSV (with the job's delimiter and line ending)."""
    with context.db(request) as conn:
        job = job_row(conn, job_id, "V2Ingest")
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=DELIMITERS[job["column_delimiter"]],
                            lineterminator=LINE_ENDINGS[job["line_ending"]])
        header = list(job["columns"] or [])
        if kind == "unprocessed":
            writer.writerow(header)
            if job["state"] in {"Failed", "Aborted"}:
                write_unprocessed(conn, job, writer)
        else:
            succeeded = kind == "successful"
            writer.writerow(["sf__Id", "sf__Created" if succeeded else "sf__Error", *header])
            rows = conn.execute('select record_id, created, error, "values" from sf_meta.bulk_job_results '
                                "where job_id = %s and succeeded = %s order by row_number", (job_id, succeeded))
            for record_id, created, error, values in rows:
                writer.writerow([record_id or "", ("true" if created else "false") if succeeded else error, *values])
    return Response(buffer.getvalue(), media_type="text/csv; charset=UTF-8")


def write_unprocessed(conn, job: dict, writer) -> None:
    """The uploaded rows that no result mentions (a failed or aborted job)."""
    upload = conn.execute("select data from sf_meta.bulk_job_uploads where job_id = %s", (job["id"],)).fetchone()
    done = {row[0] for row in conn.execute("select row_number from sf_meta.bulk_job_results where job_id = %s",
                                           (job["id"],))}
    rows = read_csv(upload[0] if upload else "", job)
    next(rows, None)
    for number, cells in enumerate((cells for cells in rows if cells), start=1):
        if number not in done:
            writer.writerow(cells)


@router.post("/services/data/v{version}/jobs/ingest")
@router.post("/services/data/v{version}/jobs/ingest/")
async def create_ingest_job(request: Request, version: str) -> JSONResponse:
    """Open an ingest job; its CSV is uploaded next."""
    options = await job_request(request, INGEST_OPERATIONS)
    return JSONResponse(await run_in_threadpool(open_ingest_job, request, version, options))


def open_ingest_job(request: Request, version: str, options: JobRequest) -> dict:
    obj = check_ingest_options(context.objects(request), options)
    with context.db(request) as conn:
        row = insert_job(conn, "V2Ingest", options, obj.name, version, context.user_id(request), "Open")
    return job_info(row, full=False)


@router.get("/services/data/v{version}/jobs/ingest")
@router.get("/services/data/v{version}/jobs/ingest/")
def get_ingest_jobs(request: Request, version: str) -> JSONResponse:
    return list_jobs(request, "V2Ingest")


@router.put("/services/data/v{version}/jobs/ingest/{job_id}/batches")
@router.put("/services/data/v{version}/jobs/ingest/{job_id}/batches/")
async def upload_job_data(request: Request, version: str, job_id: str) -> Response:
    """Take the job's CSV (once per job, as in Salesforce)."""
    data = (await request.body()).decode("utf-8", errors="replace")
    await run_in_threadpool(store_upload, request, job_id, data)
    return Response(status_code=201)


def store_upload(request: Request, job_id: str, data: str) -> None:
    with context.db(request) as conn:
        job = job_row(conn, job_id, "V2Ingest")
        if job["state"] != "Open":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job['state']}: data can only be uploaded to "
                                                   "an Open job")
        if conn.execute("select 1 from sf_meta.bulk_job_uploads where job_id = %s", (job_id,)).fetchone():
            raise ApiError(400, "BULK_API_ERROR", f"Found multiple contents for job: <{job_id}>, please 'Close' / "
                                                  "'Abort' / 'Delete' the current Job then create a new Job and make "
                                                  "sure you only do 'PUT' once on a given Job.")
        conn.execute("insert into sf_meta.bulk_job_uploads (job_id, data) values (%s, %s)", (job_id, data))


@router.patch("/services/data/v{version}/jobs/ingest/{job_id}")
@router.patch("/services/data/v{version}/jobs/ingest/{job_id}/")
async def close_or_abort_ingest_job(request: Request, version: str, job_id: str) -> JSONResponse:
    """UploadComplete processes the job (before answering); Aborted stops an open one."""
    wanted = (await json_body(request)).get("state")
    if wanted == "UploadComplete":
        return JSONResponse(await run_in_threadpool(close_ingest_job, request, job_id))
    if wanted != "Aborted":
        raise ApiError(400, "INVALIDJOBSTATE", f"Cannot change the state of job {job_id} to {wanted!r}: use "
                                               "UploadComplete or Aborted")
    return JSONResponse(await run_in_threadpool(change_state, request, job_id, "V2Ingest", wanted))


def close_ingest_job(request: Request, job_id: str) -> dict:
    with context.db(request) as conn:
        job = job_row(conn, job_id, "V2Ingest")
        if job["state"] != "Open":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job['state']}: only an Open job can be closed")
        set_job(conn, job_id, state="UploadComplete")
        answer = job_info(job_row(conn, job_id, "V2Ingest"), full=False)
    process_ingest(request, job_id)
    return answer


@router.get("/services/data/v{version}/jobs/ingest/{job_id}")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/")
def get_ingest_job(request: Request, version: str, job_id: str) -> JSONResponse:
    with context.db(request) as conn:
        return JSONResponse(job_info(job_row(conn, job_id, "V2Ingest")))


@router.delete("/services/data/v{version}/jobs/ingest/{job_id}")
@router.delete("/services/data/v{version}/jobs/ingest/{job_id}/")
def delete_ingest_job(request: Request, version: str, job_id: str) -> Response:
    return remove_job(request, job_id, "V2Ingest")


@router.get("/services/data/v{version}/jobs/ingest/{job_id}/successfulResults")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/successfulResults/")
def successful_results(request: Request, version: str, job_id: str) -> Response:
    return results_csv(request, job_id, "successful")


@router.get("/services/data/v{version}/jobs/ingest/{job_id}/failedResults")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/failedResults/")
def failed_results(request: Request, version: str, job_id: str) -> Response:
    return results_csv(request, job_id, "failed")


@router.get("/services/data/v{version}/jobs/ingest/{job_id}/unprocessedrecords")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/unprocessedrecords/")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/unprocessedRecords")
@router.get("/services/data/v{version}/jobs/ingest/{job_id}/unprocessedRecords/")
def unprocessed_records(request: Request, version: str, job_id: str) -> Response:
    return results_csv(request, job_id, "unprocessed")


# --- Query -------------------------------------------------------------------------------------------------


def encode_locator(position: int) -> str:
    """Salesforce's locators are opaque; like theirs, ours are the base64 of the next row's position."""
    return base64.b64encode(str(position).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit():
        raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator {locator!r}: pass the Sforce-Locator header of the "
                                               "previous page, or no locator for the first page")
    return int(text)


def check_bulk_query(query: soql.Query) -> None:
    if query.count_only:
        raise ApiError(400, "API_ERROR", "COUNT() is not supported by Bulk API 2.0 query jobs: use the REST "
                                         "query resource for counts")
    if query.ordered:
        raise ApiError(400, "API_ERROR", "ORDER BY is not supported by Bulk API 2.0 query jobs: it disables PK "
                                         "chunking and risks query timeouts; sort the results after reading them")
    if query.offset:
        raise ApiError(400, "API_ERROR", "OFFSET is not supported by Bulk API 2.0 query jobs: page with the "
                                         "results locator instead")


@router.post("/services/data/v{version}/jobs/query")
@router.post("/services/data/v{version}/jobs/query/")
async def create_query_job(request: Request, version: str) -> JSONResponse:
    """Run the job's SOQL and keep its ordered record Ids; the results are read page by page."""
    options = await job_request(request, QUERY_OPERATIONS)
    if not options.query:
        raise ApiError(400, "INVALIDJOB", "InvalidJob : a query job needs the SOQL in the query property")
    return JSONResponse(await run_in_threadpool(start_query_job, request, version, options))


def start_query_job(request: Request, version: str, options: JobRequest) -> dict:
    started = time.monotonic()
    query = soql.compile_query(options.query, context.objects(request),
                               include_deleted=options.operation == "queryAll", api_version=version)
    check_bulk_query(query)
    with context.db(request) as conn:
        row = insert_job(conn, "V2Query", options, query.obj.name, version, context.user_id(request),
                         "UploadComplete")
        answer = job_info(row, full=False)
        cursor = soql.open_cursor(conn, query, QUERY_RESULTS_LIFETIME, cursor_id=row["id"])
        set_job(conn, row["id"], state="JobComplete", records_processed=cursor.total_size,
                processing_ms=int((time.monotonic() - started) * 1000))
    return answer


@router.get("/services/data/v{version}/jobs/query")
@router.get("/services/data/v{version}/jobs/query/")
def get_query_jobs(request: Request, version: str) -> JSONResponse:
    return list_jobs(request, "V2Query")


@router.get("/services/data/v{version}/jobs/query/{job_id}")
@router.get("/services/data/v{version}/jobs/query/{job_id}/")
def get_query_job(request: Request, version: str, job_id: str) -> JSONResponse:
    with context.db(request) as conn:
        return JSONResponse(job_info(job_row(conn, job_id, "V2Query")))


@router.patch("/services/data/v{version}/jobs/query/{job_id}")
@router.patch("/services/data/v{version}/jobs/query/{job_id}/")
async def abort_query_job(request: Request, version: str, job_id: str) -> JSONResponse:
    wanted = (await json_body(request)).get("state")
    return JSONResponse(await run_in_threadpool(change_state, request, job_id, "V2Query", wanted))


@router.delete("/services/data/v{version}/jobs/query/{job_id}")
@router.delete("/services/data/v{version}/jobs/query/{job_id}/")
def delete_query_job(request: Request, version: str, job_id: str) -> Response:
    return remove_job(request, job_id, "V2Query")


@router.get("/services/data/v{version}/jobs/query/{job_id}/results")
@router.get("/services/data/v{version}/jobs/query/{job_id}/results/")
def query_results(request: Request, version: str, job_id: str, locator: str | None = None,
                  maxRecords: int | None = None) -> StreamingResponse:
    """One page of a query job's CSV, streamed from Postgres, with the next page's locator."""
    start = decode_locator(locator) if locator and locator != "null" else 0
    size = maxRecords if maxRecords and maxRecords > 0 else DEFAULT_MAX_RECORDS
    with context.db(request) as conn:
        job = job_row(conn, job_id, "V2Query")
        if job["state"] != "JobComplete":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job['state']}: results are ready once it is "
                                                   "JobComplete")
        cursor = soql.find_cursor(conn, job_id, context.objects(request))
    if cursor is None:
        raise ApiError(404, "NOT_FOUND", f"The results of job {job_id} have expired: run the query again")
    if start > cursor.total_size:
        raise ApiError(400, "INVALID_LOCATOR", f"Locator {locator!r} is past the end of job {job_id}'s results")
    stop = min(start + size, cursor.total_size)
    headers = {"Sforce-Locator": encode_locator(stop) if stop < cursor.total_size else "null",
               "Sforce-NumberOfRecords": str(stop - start)}
    return StreamingResponse(stream_csv(request, cursor, job, start, stop), media_type="text/csv; charset=UTF-8",
                             headers=headers)


def stream_csv(request: Request, cursor: soql.Cursor, job: dict, start: int, stop: int) -> Iterator[str]:
    """The header, then rows start < position <= stop read through a server-side cursor, a few thousand at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=DELIMITERS[job["column_delimiter"]],
                        lineterminator=LINE_ENDINGS[job["line_ending"]], quoting=csv.QUOTE_ALL)
    writer.writerow(cursor.query.csv_header())
    with context.db(request) as conn, conn.cursor(name=f"bulk_results_{job['id']}") as rows:
        rows.itersize = STREAM_ROWS
        rows.execute(soql.cursor_page_sql(cursor.query), {"cursor": cursor.id, "start": start, "stop": stop})
        while batch := rows.fetchmany(STREAM_ROWS):
            writer.writerows(cursor.query.csv_row(row) for row in batch)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
