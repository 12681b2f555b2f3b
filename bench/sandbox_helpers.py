"""What several benchmarks share: a free local port, and bulk-filling the Salesforce sandbox org with records.

The benchmark scripts run as `python bench/<name>.py`, so this module is importable beside them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

import psycopg


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SYSTEM_COLUMNS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                  "SystemModstamp", "OwnerId")


def fill_org(database_url: str, object_name: str, wanted: int, columns: Sequence[str],
             values: Callable[[int, int], tuple], stamp: Callable[[int], str]) -> int:
    """Add records of `object_name` to the sandbox org until it holds `wanted` live ones, by COPY straight into
    its store (Ids from the object's own sequence, owned by the org's first user). `values(offset, number)`
    gives a new record's `columns`, `stamp(offset)` its created/modified time. Returns the live count."""
    from csops.sandbox.salesforce import store
    from csops.sandbox.salesforce.objects import OBJECTS_BY_NAME, id_sequence, make_id

    obj = OBJECTS_BY_NAME[object_name]
    with psycopg.connect(database_url) as connection:
        store.ensure_schema(connection)
        have = connection.execute(f'select count(*) from sf."{object_name}" where not "IsDeleted"').fetchone()[0]
        missing = max(wanted - have, 0)
        if missing:
            owner = connection.execute('select "Id" from sf."User" order by "Id" limit 1').fetchone()[0]
            numbers = [n for (n,) in connection.execute(
                f"select nextval('{id_sequence(obj)}') from generate_series(1, %s)", (missing,))]
            names = ", ".join(f'"{column}"' for column in (*SYSTEM_COLUMNS, *columns))
            with connection.cursor().copy(f'copy sf."{object_name}" ({names}) from stdin') as copy:
                for offset, number in enumerate(numbers):
                    at = stamp(offset)
                    copy.write_row((make_id(obj.key_prefix, number), False, at, owner, at, owner, at, owner,
                                    *values(offset, number)))
        return have + missing
