"""Reading the dashboards' marts from the warehouse, and nothing else: every figure is computed by dbt.

The warehouse is the one everything else uses: AIRFLOW_CONN_CS_WAREHOUSE or CS_WAREHOUSE_URL when set, else
the embedded server's `warehouse` database (started by `csops dashboards`, `make warehouse` or `make run`).
A mart that is not built, or built empty, raises MartMissing naming the model, so a page can say what to
build instead of showing a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from csops import settings

MARTS_SCHEMA = "marts"
OPS_SCHEMA = "ops"
INTEGER_TYPES = {20, 21, 23}  # the type oids of bigint, smallint, integer


class MartMissing(Exception):
    """The model's table is not in the warehouse (`missing`), or has no rows (`empty`)."""

    def __init__(self, model: str, why: str):
        super().__init__(f"{MARTS_SCHEMA}.{model} is {why}")
        self.model = model
        self.why = why


class WarehouseUnavailable(Exception):
    """The warehouse did not answer."""


@dataclass(frozen=True)
class LastRun:
    """The latest dbt build of a model that succeeded: when it was recorded, its run and run date."""

    recorded_at: datetime
    airflow_run_id: str | None
    run_date: object


def warehouse_url() -> str:
    """The configured warehouse, else the embedded server's `warehouse` database."""
    configured = settings.configured_warehouse_url()
    if configured:
        return configured
    from csops.local_stack import WAREHOUSE_DATABASE, local_server

    server = local_server()
    if not server.password_file.exists():
        raise WarehouseUnavailable(f"no warehouse configured and no embedded server in {server.data_dir}")
    return server.url(WAREHOUSE_DATABASE)


def connect(url: str | None = None) -> psycopg.Connection:
    try:
        return psycopg.connect(url or warehouse_url(), row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise WarehouseUnavailable(str(error).strip()) from None


def table_exists(connection: psycopg.Connection, schema: str, table: str) -> bool:
    row = connection.execute("select to_regclass(%s) as found", (f"{schema}.{table}",)).fetchone()
    return row["found"] is not None


def read_table(schema: str, table: str, where: str = "", params: tuple = (), order_by: str = "",
               url: str | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """Rows of `schema.table` (a plain selection: `where` and `order_by` are SQL over its columns, values go
    through `params`; only `columns` when given), or None when the table does not exist."""
    with connect(url) as connection:
        if not table_exists(connection, schema, table):
            return None
        selected = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
        query = sql.SQL("select {} from {}.{}").format(selected, sql.Identifier(schema), sql.Identifier(table))
        if where:
            query += sql.SQL(" where ") + sql.SQL(where)
        if order_by:
            query += sql.SQL(" order by ") + sql.SQL(order_by)
        cursor = connection.execute(query, params)
        frame = pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])
        # integers stay integers where some are null (pandas would make them floats: an id 10014 as 10014.0)
        for column in cursor.description:
            if column.type_code in INTEGER_TYPES:
                frame[column.name] = frame[column.name].astype("Int64")
        return frame


def read_mart(model: str, where: str = "", params: tuple = (), order_by: str = "", *,
              url: str | None = None, require_rows: bool = True, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows of the mart `model`; MartMissing when it is not built, or (`require_rows`) built empty."""
    frame = read_table(MARTS_SCHEMA, model, where, params, order_by, url, columns)
    if frame is None:
        raise MartMissing(model, "missing")
    if require_rows and frame.empty and not where:
        raise MartMissing(model, "empty")
    return frame


def last_successful_build(model: str, url: str | None = None) -> LastRun | None:
    """The latest successful dbt build of `model` recorded in ops.dbt_node_results (every dbt invocation of
    the project records its results there), or None when none is recorded."""
    with connect(url) as connection:
        if not table_exists(connection, OPS_SCHEMA, "dbt_node_results"):
            return None
        row = connection.execute(
            """
            select recorded_at, airflow_run_id, run_date from ops.dbt_node_results
            where resource_type = 'model' and node_name = %s and status = 'success'
            order by recorded_at desc limit 1
            """, (model,)).fetchone()
    return LastRun(**row) if row else None
