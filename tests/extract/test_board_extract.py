"""The board extract against the board sandbox over HTTP: paging, pacing, 429s, the daily limit, increments."""

from __future__ import annotations

import time

import psycopg
import pytest

from csops.extract.board import BOARD_RESOURCES, BoardClient, load_resource
from csops.extract.engine import ExtractError
from csops.sandbox.board.server import BoardSandbox
from csops.sandbox.board.store import DEFAULT_DAILY_LIMIT
from tests.board_fixtures import running_board


@pytest.fixture(scope="module")
def board(postgres, tmp_path_factory) -> BoardSandbox:
    with running_board(postgres, tmp_path_factory.mktemp("board"), "board_extract") as sandbox:
        yield sandbox


@pytest.fixture
def client(board) -> BoardClient:
    board.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    board.admin.set_per_second_limit(True)
    board.admin.reset_usage()
    values = board.credentials()
    return BoardClient(board.base_url, values["api_key"], values["token"])


def source_count(board, table: str) -> int:
    with psycopg.connect(board.database_url) as connection:
        return connection.execute(f"select count(*) from board.{table}").fetchone()[0]


def raw(warehouse_url: str, query: str, *params):
    with psycopg.connect(warehouse_url) as connection:
        return connection.execute(query, params).fetchall()


def test_every_page_is_read_under_the_rate_limit(board, client, warehouse_url):
    started = time.monotonic()
    for resource in BOARD_RESOURCES:
        result = load_resource(client, warehouse_url, resource, run_id="first")
        assert result.status == "succeeded" and result.rows_read == source_count(board, resource), resource
    elapsed = time.monotonic() - started
    # The per-second limit is on: a burst would have been refused; pacing keeps to 3 calls a second.
    assert client.calls >= 4 and elapsed >= (client.calls - 3) / 3
    assert raw(warehouse_url, "select count(*) from raw_board.invoice_details")[0][0] == source_count(
        board, "invoice_details")
    total, raw_total = raw(warehouse_url, "select total, (_raw ->> 'total') from raw_board.invoices limit 1")[0]
    assert str(total) == raw_total.removesuffix(".0") or float(total) == float(raw_total)
    # board's names: client_id from the nested client, lines keyed by (invoice_id, no), total excludes tax.
    assert raw(warehouse_url, """
        select count(*) from raw_board.invoices as i
        where i.client_id is distinct from (i._raw -> 'client' ->> 'id')::bigint
           or i.total is distinct from (select sum(d.price) from raw_board.invoice_details as d
                                        where d.invoice_id = i.id)""") == [(0,)]
    with psycopg.connect(board.database_url) as connection:
        stored_subtotal = connection.execute("select sum(subtotal) from board.invoices").fetchone()[0]
    assert raw(warehouse_url, "select sum(total) from raw_board.invoices") == [(stored_subtotal,)]
    assert raw(warehouse_url, "select distinct order_status_name from raw_board.projects") == [("受注済",)]
    assert raw(warehouse_url, "select count(*) from raw_board.clients where custom_no is null") == [(0,)]
    calls = raw(warehouse_url, "select sum(api_calls) from ops.extract_runs where run_id = 'first'")[0][0]
    assert calls == client.calls


def test_a_rerun_reads_only_the_overlap_and_changes_nothing(board, client, warehouse_url):
    load_resource(client, warehouse_url, "clients", run_id="one")
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        connection.execute("update board.clients set tel = '03-0000-0000', updated_at = now() "
                           "where id = (select min(id) from board.clients)")
    again = load_resource(client, warehouse_url, "clients", run_id="two")
    assert again.load_mode == "incremental" and again.rows_read < source_count(board, "clients")
    assert (again.rows_inserted, again.rows_updated) == (0, 1)
    assert raw(warehouse_url, "select tel from raw_board.clients order by id limit 1") == [("03-0000-0000",)]
    third = load_resource(client, warehouse_url, "clients", run_id="three")
    assert (third.rows_inserted, third.rows_updated) == (0, 0)


def test_a_burst_from_another_client_is_waited_out(board, client, warehouse_url):
    other = BoardClient(board.base_url, client.api_key, client.token, requests_per_second=100)
    for _ in range(3):
        other.get("/v1/clients", [("per_page", "1")])  # the key's three calls of this second are spent
    result = load_resource(client, warehouse_url, "projects", run_id="busy")
    assert result.status == "succeeded" and result.rows_read == source_count(board, "projects")


def test_a_line_removed_from_an_invoice_is_flagged(board, client, warehouse_url):
    load_resource(client, warehouse_url, "invoices", run_id="lines-before")
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        invoice_id, last = connection.execute(
            "select invoice_id, max(sort_no) from board.invoice_details group by invoice_id having count(*) > 1 "
            "order by invoice_id limit 1").fetchone()
        removed = connection.execute("delete from board.invoice_details where invoice_id = %s and sort_no = %s "
                                     "returning *", (invoice_id, last)).fetchone()
        connection.execute("update board.invoices set updated_at = now() where id = %s", (invoice_id,))
    try:
        load_resource(client, warehouse_url, "invoices", run_id="lines-after")
        assert raw(warehouse_url, "select no from raw_board.invoice_details where invoice_id = %s "
                                  "and _deleted_at is not null", invoice_id) == [(last,)]
    finally:
        with psycopg.connect(board.database_url, autocommit=True) as connection:
            columns = ", ".join(["%s"] * len(removed))
            connection.execute(f"insert into board.invoice_details values ({columns})", removed)


def test_the_daily_limit_stops_cleanly_and_the_next_run_resumes(board, client, warehouse_url):
    board.admin.set_daily_limit(1)  # one page of 100 invoices; the test world has more
    stopped = load_resource(client, warehouse_url, "invoices", run_id="limited")
    assert stopped.status == "stopped" and "daily API limit" in stopped.error
    assert 0 < stopped.rows_read < source_count(board, "invoices")
    assert raw(warehouse_url, "select count(*) from ops.extract_watermarks where table_name = 'invoices'") == [(0,)]
    board.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    board.admin.reset_usage()
    resumed = load_resource(client, warehouse_url, "invoices", run_id="resumed")
    assert resumed.status == "succeeded"
    assert raw(warehouse_url, "select count(*) from raw_board.invoices")[0][0] == source_count(board, "invoices")


def test_a_token_without_permission_names_the_fix(board, warehouse_url):
    values = board.credentials()
    restricted = BoardClient(board.base_url, values["api_key"], values["restricted_token"])
    with pytest.raises(ExtractError, match="403.*board_default connection"):
        load_resource(restricted, warehouse_url, "invoices", run_id="restricted")
    assert raw(warehouse_url, "select status from ops.extract_runs where run_id = 'restricted'") == [("failed",)]


def test_the_airflow_connection_reaches_the_api(board, warehouse_url, monkeypatch):
    import json

    from csops_airflow.board import BoardHook

    values = board.credentials()
    monkeypatch.setenv("AIRFLOW_CONN_BOARD_DEFAULT", json.dumps(
        {"conn_type": "http", "host": board.base_url, "password": values["token"],
         "extra": {"api_key": values["api_key"]}}))
    board.admin.reset_usage()
    result = load_resource(BoardHook().get_conn(), warehouse_url, "clients", run_id="hook")
    assert result.rows_read == source_count(board, "clients")
    monkeypatch.setenv("AIRFLOW_CONN_BOARD_DEFAULT", json.dumps({"conn_type": "http", "host": board.base_url}))
    with pytest.raises(ValueError, match="lacks password .* extra api_key"):
        BoardHook().get_conn()
