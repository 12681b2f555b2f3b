"""What a request handler of the sandbox org needs: a database connection, the caller, the org's objects.

The middleware in `app.py` authenticates every `/services/` call before a handler runs, so `user_id`
always names a real user there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi import Request

from csops.sandbox.salesforce import store
from csops.sandbox.salesforce.objects import SObject

OBJECTS_CACHE_SECONDS = 2.0


@contextmanager
def db(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection inside a transaction: committed when the block succeeds, rolled back on error."""
    with request.app.state.pool.connection() as conn, conn.transaction():
        yield conn


def user_id(request: Request) -> str:
    """The Id of the user whose session made this call."""
    return request.state.user_id


def instance_url(request: Request) -> str:
    """`scheme://host[:port]` as the client addressed this server (for `url` attributes and next-page links)."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def objects(request: Request) -> dict[str, SObject]:
    """The org's objects with their run-time custom fields, re-read at most every few seconds."""
    state = request.app.state
    cached = getattr(state, "objects_cache", None)
    if cached is None or time.monotonic() - cached[0] > OBJECTS_CACHE_SECONDS:
        with db(request) as conn:
            cached = (time.monotonic(), store.current_objects(conn))
        state.objects_cache = cached
    return cached[1]


def forget_objects(request: Request) -> None:
    """Drop the cached objects (after a custom field was added)."""
    request.app.state.objects_cache = None
