"""The CSV inbox: good exports merge into raw tables and are archived; bad ones are rejected whole."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from csops.extract.csv_inbox import process_inbox
from csops.extract.engine import load_table
from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME, RAW_SCHEMA, SOURCE_NAME
from csops.summary import format_summary, run_summary

TODAY = date(2026, 11, 21)
HEADER = "login_event_id,user_id,tenant_id,logged_in_at,user_agent,created_at,updated_at\n"


@pytest.fixture
def warehouse_with_logins(nexpro_url, warehouse_url) -> str:
    load_table(nexpro_url, warehouse_url, NEXPRO_TABLES_BY_NAME["login_events"], source_name=SOURCE_NAME,
               raw_schema=RAW_SCHEMA, run_id="extract")
    return warehouse_url


def count_logins(url) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute("select count(*) from raw_nexpro.login_events").fetchone()[0]


def run_inbox(url, inbox):
    return process_inbox(url, inbox, NEXPRO_TABLES_BY_NAME, raw_schema=RAW_SCHEMA, run_id="inbox-run", today=TODAY)


def test_good_export_is_merged_and_archived(warehouse_with_logins, tmp_path):
    before = count_logins(warehouse_with_logins)
    (tmp_path / "login_events_2026-11.csv").write_text(
        HEADER
        + "9000001,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
        + '9000002,1,10001,2026-11-20 10:30:00+09,"Edge, managed",2026-11-20T01:30:00Z,2026-11-20T01:30:00Z\n'
    )

    [outcome] = run_inbox(warehouse_with_logins, tmp_path)

    assert (outcome.status, outcome.table, outcome.rows) == ("loaded", "login_events", 2)
    assert count_logins(warehouse_with_logins) == before + 2
    assert (tmp_path / "archive" / "2026-11-21" / "login_events_2026-11.csv").exists()
    assert not (tmp_path / "login_events_2026-11.csv").exists()
    with psycopg.connect(warehouse_with_logins) as connection:
        agent = connection.execute("select user_agent from raw_nexpro.login_events where login_event_id = 9000002")
        assert agent.fetchone()[0] == "Edge, managed"
        audit = connection.execute("select rows_inserted from ops.extract_runs "
                                   "where source_name = 'csv:login_events_2026-11.csv'").fetchone()
        assert audit == (2,)


def test_reloading_the_same_export_changes_nothing(warehouse_with_logins, tmp_path):
    content = HEADER + "9000001,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
    (tmp_path / "login_events_a.csv").write_text(content)
    run_inbox(warehouse_with_logins, tmp_path)
    after_first = count_logins(warehouse_with_logins)
    (tmp_path / "login_events_a.csv").write_text(content)
    run_inbox(warehouse_with_logins, tmp_path)
    assert count_logins(warehouse_with_logins) == after_first
    assert (tmp_path / "archive" / "2026-11-21" / "login_events_a.1.csv").exists(), "earlier archive kept"


def test_bad_file_is_rejected_whole_with_the_lines_named(warehouse_with_logins, tmp_path):
    before = count_logins(warehouse_with_logins)
    (tmp_path / "login_events_bad.csv").write_text(
        HEADER
        + "9000001,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
        + "9000002,abc,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
        + "9000003,1,10001,yesterday-ish,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
        + ",1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
    )

    [outcome] = run_inbox(warehouse_with_logins, tmp_path)

    assert outcome.status == "rejected"
    assert count_logins(warehouse_with_logins) == before, "nothing from a rejected file is loaded"
    reason = (tmp_path / "rejected" / "login_events_bad.csv.reason.txt").read_text()
    assert "line 3: column user_id: 'abc' is not a valid bigint" in reason
    assert "line 4: column logged_in_at: 'yesterday-ish' is not a valid timestamp with time zone" in reason
    assert "line 5: key column login_event_id is empty" in reason
    assert (tmp_path / "rejected" / "login_events_bad.csv").exists()
    summary = run_summary(warehouse_with_logins, "inbox-run")
    assert summary["files_rejected"] == ["login_events_bad.csv"]
    assert "Rejected CSV files (nothing loaded from them): login_events_bad.csv" in format_summary(summary)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("webinar_notes.csv", "a,b\n1,2\n", "the file name must start with the table it feeds"),
    ("login_events_x.csv", "login_event_id,colour\n1,red\n", "line 1: column(s) colour are not columns of"),
    ("login_events_y.csv", "user_id,tenant_id\n1,10001\n", "key column(s) login_event_id missing"),
    ("login_events_z.csv", HEADER + "1,2\n", "line 2: 2 fields, but the header has 7"),
    ("login_events_w.csv", "", "the file is empty"),
    ("login_events_v.csv", HEADER + "1,2,3,2026-01-01,\x81\x00,x,x\n", "neither UTF-8 nor Shift_JIS"),
])
def test_structural_problems_are_named(warehouse_with_logins, tmp_path, name, content, expected):
    path = tmp_path / name
    if "\x81" in content:
        path.write_bytes(content.encode("latin-1").replace(b"\x81\x00", b"\x81\x20"))
    else:
        path.write_text(content)
    [outcome] = run_inbox(warehouse_with_logins, tmp_path)
    assert outcome.status == "rejected"
    assert expected in (tmp_path / "rejected" / f"{name}.reason.txt").read_text()


def test_shift_jis_export_from_excel_is_read(warehouse_with_logins, tmp_path):
    row = "9000010,1,10001,2026-11-20T01:00:00Z,社内PC,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
    (tmp_path / "login_events_sjis.csv").write_bytes((HEADER + row).encode("cp932"))
    [outcome] = run_inbox(warehouse_with_logins, tmp_path)
    assert outcome.status == "loaded"
    with psycopg.connect(warehouse_with_logins) as connection:
        assert connection.execute("select user_agent from raw_nexpro.login_events "
                                  "where login_event_id = 9000010").fetchone()[0] == "社内PC"


def test_file_waits_when_its_raw_table_does_not_exist_yet(warehouse_url, tmp_path):
    (tmp_path / "webinars_early.csv").write_text("webinar_id\n1\n")
    [outcome] = run_inbox(warehouse_url, tmp_path)
    assert outcome.status == "waiting"
    assert (tmp_path / "webinars_early.csv").exists()
