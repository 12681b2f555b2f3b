"""The board extract against the board sandbox over HTTP: paging, pacing, 429s, 5xx and dropped connections,
the daily limit, increments, and deletes (found by complete reads only, re-checked, reconciled)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

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
    board.admin.set_total_count_header(True)
    board.admin.clear_faults()
    values = board.credentials()
    return BoardClient(board.base_url, values["api_key"], values["token"], retry_wait_seconds=0.05)


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


@contextmanager
def invoice_deleted(board, invoice_id: int):
    """Delete an invoice (with its lines) in board; put it back afterwards."""
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        lines = connection.execute("delete from board.invoice_details where invoice_id = %s returning *",
                                   (invoice_id,)).fetchall()
        invoice = connection.execute("delete from board.invoices where id = %s returning *", (invoice_id,)).fetchone()
    deleted = {"restored": False}

    def restore() -> None:
        if not deleted["restored"]:
            deleted["restored"] = True
            with psycopg.connect(board.database_url, autocommit=True) as connection:
                connection.execute(f"insert into board.invoices values ({', '.join(['%s'] * len(invoice))})", invoice)
                for line in lines:
                    connection.execute(f"insert into board.invoice_details values ({', '.join(['%s'] * len(line))})",
                                       line)
    try:
        yield restore
    finally:
        restore()


def invoice_ids(board) -> list[int]:
    with psycopg.connect(board.database_url) as connection:
        return [row[0] for row in connection.execute("select id from board.invoices order by id")]


def test_a_delete_between_pages_hides_no_live_invoice(board, client, warehouse_url):
    load_resource(client, warehouse_url, "invoices", run_id="before")
    ids = invoice_ids(board)
    first, shifted = ids[0], ids[100]  # deleting the first moves the 101st onto page 1, already read

    def delete_after_page_one(response, *args, **kwargs):
        query = parse_qs(urlsplit(response.url).query)
        if urlsplit(response.url).path == "/v1/invoices" and query.get("page") == ["1"] and not deleted:
            deleted.append(stack.enter_context(invoice_deleted(board, first)))

    from contextlib import ExitStack

    deleted = []
    with ExitStack() as stack:
        client.session.hooks["response"].append(delete_after_page_one)
        try:
            result = load_resource(client, warehouse_url, "invoices", run_id="paged", full_refresh=True)
        finally:
            client.session.hooks["response"].remove(delete_after_page_one)
        assert deleted, "the invoice was deleted between pages"
        # The shifted invoice was on no page; asked for on its own, it is still in board: not flagged.
        assert result.status == "succeeded" and result.rows_deleted == 0
        assert raw(warehouse_url, "select id from raw_board.invoices where _deleted_at is not null") == []
        # The next reconciliation reads every id again: the deleted invoice is flagged, the shifted one is not.
        reconciled = load_resource(client, warehouse_url, "invoices", run_id="reconciled",
                                   reconcile_every=timedelta(0))
        assert (reconciled.load_mode, reconciled.rows_deleted, reconciled.error) == ("reconcile", 1, None)
        assert raw(warehouse_url, "select id from raw_board.invoices where _deleted_at is not null") == [(first,)]
        assert raw(warehouse_url, "select _deleted_at from raw_board.invoices where id = %s", shifted) == [(None,)]


def test_without_a_total_header_every_page_is_read_and_nothing_is_flagged(board, client, warehouse_url):
    board.admin.set_total_count_header(False)
    first = load_resource(client, warehouse_url, "invoices", run_id="no-total")
    assert first.status == "succeeded" and first.rows_read == source_count(board, "invoices") > 100
    again = load_resource(client, warehouse_url, "invoices", run_id="no-total-again", full_refresh=True)
    assert again.rows_deleted == 0 and "no X-Total-Count" in again.error
    assert raw(warehouse_url, "select count(*) filter (where _deleted_at is null) from raw_board.invoices") == [
        (source_count(board, "invoices"),)]


def test_a_deleted_invoice_is_found_by_the_reconciliation(board, client, warehouse_url):
    load_resource(client, warehouse_url, "invoices", run_id="monday")
    gone = invoice_ids(board)[5]
    with invoice_deleted(board, gone) as restore:
        daily = load_resource(client, warehouse_url, "invoices", run_id="tuesday")
        assert (daily.load_mode, daily.rows_deleted) == ("incremental", 0), "the last complete read is recent"
        weekly = load_resource(client, warehouse_url, "invoices", run_id="sunday", reconcile_every=timedelta(0))
        assert (weekly.status, weekly.load_mode, weekly.rows_deleted) == ("succeeded", "reconcile", 1)
        assert raw(warehouse_url, "select id from raw_board.invoices where _deleted_at is not null") == [(gone,)]
        restore()  # put back in board (a deletion undone): the next read un-flags it
    load_resource(client, warehouse_url, "invoices", run_id="next-sunday", reconcile_every=timedelta(0))
    assert raw(warehouse_url, "select count(*) from raw_board.invoices where _deleted_at is not null") == [(0,)]


def test_a_record_quarantined_on_a_full_load_is_not_flagged_deleted(board, client, warehouse_url):
    load_resource(client, warehouse_url, "clients", run_id="before")
    with psycopg.connect(warehouse_url, autocommit=True) as connection:  # a raw column narrower than board's values
        connection.execute("alter table raw_board.clients alter column tel type varchar(20) using left(tel, 20)")
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        client_id, tel = connection.execute("select id, tel from board.clients order by id limit 1").fetchone()
        connection.execute("update board.clients set tel = '03-0000-0000 内線 1234567890' where id = %s", (client_id,))
    try:
        refreshed = load_resource(client, warehouse_url, "clients", run_id="refresh", full_refresh=True)
    finally:
        with psycopg.connect(board.database_url, autocommit=True) as connection:
            connection.execute("update board.clients set tel = %s where id = %s", (tel, client_id))
    assert (refreshed.rows_quarantined, refreshed.rows_deleted) == (1, 0)
    assert raw(warehouse_url, "select _deleted_at from raw_board.clients where id = %s", client_id) == [(None,)]


def test_a_503_and_a_dropped_connection_are_tried_again(board, client, warehouse_url):
    board.admin.add_fault("unavailable")
    board.admin.add_fault("drop")
    result = load_resource(client, warehouse_url, "clients", run_id="flaky")
    assert result.status == "succeeded" and result.rows_read == source_count(board, "clients")
    pages = -(-source_count(board, "clients") // 100)
    assert result.api_calls == pages + 2


def test_board_down_past_the_last_try_fails_naming_the_call(board, client, warehouse_url):
    board.admin.add_fault("unavailable", times=client.attempts)
    with pytest.raises(ExtractError, match=r"503 to /v1/projects.*5 tries in a row"):
        load_resource(client, warehouse_url, "projects", run_id="down")
    assert raw(warehouse_url, "select status from ops.extract_runs where run_id = 'down'") == [("failed",)]
    assert raw(warehouse_url, "select to_regclass('raw_board.projects')") == [(None,)], "nothing written"


@pytest.mark.parametrize("resource", ["clients", "projects"])
def test_an_archived_record_is_history_not_a_delete(board, client, warehouse_url, resource):
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        archived = connection.execute(f"update board.{resource} set archived = true "
                                      f"where id = (select min(id) from board.{resource}) returning id").fetchone()[0]
    try:
        plain_list = [("include_lost_flg", "1")] if resource == "projects" else []
        listed = [record["id"] for page in client.pages(resource, plain_list) for record in page]
        assert archived not in listed, "board lists an archived record only when asked"
        full = load_resource(client, warehouse_url, resource, run_id="archived-full", full_refresh=True)
        reconciled = load_resource(client, warehouse_url, resource, run_id="archived-weekly",
                                   reconcile_every=timedelta(0))
    finally:
        with psycopg.connect(board.database_url, autocommit=True) as connection:
            connection.execute(f"update board.{resource} set archived = false where id = %s", (archived,))
    assert full.rows_read == source_count(board, resource) and full.rows_deleted == 0
    assert (reconciled.load_mode, reconciled.rows_deleted) == ("reconcile", 0)
    assert raw(warehouse_url, f"select _deleted_at from raw_board.{resource} where id = %s", archived) == [(None,)]
