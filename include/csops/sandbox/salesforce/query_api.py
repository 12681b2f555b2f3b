"""The REST query resources: `GET /services/data/vNN.N/query?q=…`, `/queryAll?q=…` and their next pages.

Results come in pages of up to 2,000 records (fewer when the client asks with `Sforce-Query-Options:
batchSize=n`). When more remain, the answer carries `nextRecordsUrl` (`/services/data/vNN.N/query/01g…-2000`):
the query's ordered record Ids are kept as a cursor in `sf_meta`, so later pages continue exactly where the
previous one stopped. A cursor unused for 15 minutes expires, as in Salesforce.
"""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from csops.sandbox.salesforce import context, soql
from csops.sandbox.salesforce.bulk import tables_ready
from csops.sandbox.salesforce.errors import ApiError

router = APIRouter(dependencies=[Depends(tables_ready)])

CURSOR_LIFETIME = timedelta(minutes=15)
MIN_BATCH_SIZE, MAX_BATCH_SIZE = 200, soql.PAGE_SIZE


def batch_size(request: Request) -> int:
    """The page size: Salesforce's 2,000, or the client's `Sforce-Query-Options: batchSize=n` (200 to 2,000)."""
    options = request.headers.get("sforce-query-options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", options, re.IGNORECASE)
    if not match:
        return soql.PAGE_SIZE
    return max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, int(match.group(1))))


def next_records_url(version: str, include_deleted: bool, cursor_id: str, position: int) -> str:
    resource = "queryAll" if include_deleted else "query"
    return f"/services/data/v{version}/{resource}/{cursor_id}-{position}"


def page(conn, cursor: soql.Cursor, start: int, size: int, version: str) -> dict:
    """One page of a cursor as Salesforce answers it; a finished cursor is dropped."""
    stop = min(start + size, cursor.total_size)
    records = [cursor.query.record(row) for row in soql.read_cursor(conn, cursor, start, stop)]
    done = stop >= cursor.total_size
    body = {"totalSize": cursor.total_size, "done": done}
    if done:
        soql.close_cursor(conn, cursor.id)
    else:
        body["nextRecordsUrl"] = next_records_url(version, cursor.query.include_deleted, cursor.id, stop)
    body["records"] = records
    return body


def run_query(request: Request, version: str, text: str | None, include_deleted: bool) -> JSONResponse:
    if text is None:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified: send the SOQL in the q "
                                               "parameter, e.g. ?q=SELECT+Id+FROM+Account")
    query = soql.compile_query(text, context.objects(request), include_deleted=include_deleted, api_version=version)
    with context.db(request) as conn:
        if query.count_only:
            return JSONResponse({"totalSize": query.count(conn), "done": True, "records": []})
        cursor = soql.open_cursor(conn, query, CURSOR_LIFETIME)
        return JSONResponse(page(conn, cursor, 0, batch_size(request), version))


def continue_query(request: Request, version: str, locator: str) -> JSONResponse:
    cursor_id, _, position = locator.rpartition("-")
    with context.db(request) as conn:
        cursor = (soql.find_cursor(conn, cursor_id, context.objects(request), extend=CURSOR_LIFETIME)
                  if cursor_id and position.isdigit() else None)
        if cursor is None or int(position) >= cursor.total_size:
            raise ApiError(400, "INVALID_QUERY_LOCATOR",
                           f"invalid query locator: {locator} is unknown or has expired (locators expire after "
                           "15 minutes unused and once their last page was read); run the query again.")
        return JSONResponse(page(conn, cursor, int(position), batch_size(request), version))


@router.get("/services/data/v{version}/query")
@router.get("/services/data/v{version}/query/")
def query(request: Request, version: str, q: str | None = None) -> JSONResponse:
    """Live records matching the SOQL in `q`."""
    return run_query(request, version, q, include_deleted=False)


@router.get("/services/data/v{version}/queryAll")
@router.get("/services/data/v{version}/queryAll/")
def query_all(request: Request, version: str, q: str | None = None) -> JSONResponse:
    """Records matching the SOQL in `q`, deleted ones included (`IsDeleted` true)."""
    return run_query(request, version, q, include_deleted=True)


@router.get("/services/data/v{version}/query/{locator}")
@router.get("/services/data/v{version}/queryAll/{locator}")
def query_more(request: Request, version: str, locator: str) -> JSONResponse:
    """The next page of a query, from the locator in the previous page's `nextRecordsUrl`."""
    return continue_query(request, version, locator)
