"""Turn Airflow connections into libpq connection strings for the project's loaders.

The loaders in `include/csops` speak psycopg 3 and know nothing of Airflow; this adapter is the one place
that reads an Airflow connection (from the metadata DB, a secrets backend or AIRFLOW_CONN_<ID>).
"""

from __future__ import annotations

from airflow.sdk import BaseHook
from psycopg.conninfo import make_conninfo

# Connection extras that libpq understands and that may be set on a Postgres connection.
LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options", "application_name")


def postgres_conninfo(conn_id: str) -> str:
    connection = BaseHook.get_connection(conn_id)
    if not connection.host:
        raise ValueError(f"Airflow connection {conn_id!r} has no host; set it to the Postgres server's host name")
    extras = {key: value for key, value in connection.extra_dejson.items() if key in LIBPQ_EXTRAS}
    return make_conninfo(host=connection.host, port=connection.port or 5432, user=connection.login or None,
                         password=connection.password or None, dbname=connection.schema or None, **extras)
