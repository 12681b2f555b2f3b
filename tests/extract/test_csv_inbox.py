"""The CSV inbox: good exports merge into raw tables and are archived; bad ones are rejected whole."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

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
    return process_inbox(url, inbox, NEXPRO_TABLES_BY_NAME, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA,
                         run_id="inbox-run", today=TODAY)


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
    ("login_events_y.csv", "user_id,tenant_id\n1,10001\n",
     "required column(s) login_event_id, logged_in_at, created_at, updated_at"),
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


def query(url, statement, params=None):
    with psycopg.connect(url) as connection:
        return connection.execute(statement, params).fetchall()


def test_key_only_file_is_rejected_for_its_missing_required_columns_and_the_run_goes_on(warehouse_with_logins,
                                                                                        tmp_path):
    (tmp_path / "login_events_keyonly.csv").write_text("login_event_id\n1\n")
    (tmp_path / "login_events_zgood.csv").write_text(
        HEADER + "9000001,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n")

    keyonly, good = run_inbox(warehouse_with_logins, tmp_path)

    assert keyonly.status == "rejected" and good.status == "loaded"
    reason = (tmp_path / "rejected" / "login_events_keyonly.csv.reason.txt").read_text()
    assert "required column(s) user_id, tenant_id, logged_in_at, created_at, updated_at missing" in reason
    assert not (tmp_path / "login_events_keyonly.csv").exists(), "a rejected file never blocks later runs"


def test_required_values_must_be_filled(warehouse_with_logins, tmp_path):
    (tmp_path / "login_events_gap.csv").write_text(
        HEADER + "9000001,,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n")
    [outcome] = run_inbox(warehouse_with_logins, tmp_path)
    assert outcome.status == "rejected"
    assert "line 2: required column user_id is empty" in outcome.reasons


def test_a_database_error_mid_file_rejects_the_file_loads_nothing_and_the_next_file_loads(warehouse_with_logins,
                                                                                           tmp_path):
    # A failure the validation cannot foresee: the warehouse refuses one row while the file is merged.
    with psycopg.connect(warehouse_with_logins, autocommit=True) as connection:
        connection.execute("alter table raw_nexpro.login_events add constraint no_fax "
                           "check (user_agent is distinct from 'Fax')")
    before = count_logins(warehouse_with_logins)
    (tmp_path / "login_events_a.csv").write_text(
        HEADER + "9000001,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n"
        + "9000002,1,10001,2026-11-20T01:00:00Z,Fax,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n")
    (tmp_path / "login_events_b.csv").write_text(
        HEADER + "9000003,1,10001,2026-11-20T01:00:00Z,Chrome,2026-11-20T01:00:00Z,2026-11-20T01:00:00Z\n")

    first, second = run_inbox(warehouse_with_logins, tmp_path)

    assert (first.status, second.status) == ("rejected", "loaded")
    assert count_logins(warehouse_with_logins) == before + 1, "nothing from the failed file, all of the next"
    reason = (tmp_path / "rejected" / "login_events_a.csv.reason.txt").read_text()
    assert "loading failed: CheckViolation" in reason and "no_fax" in reason
    [(status, error)] = query(warehouse_with_logins, "select status, error from ops.extract_runs "
                                                     "where source_name = 'csv:login_events_a.csv'")
    assert status == "rejected" and "no_fax" in error


def extracted_login(url):
    """An extracted login event: its key, user agent and updated_at."""
    return query(url, "select login_event_id, user_agent, updated_at from raw_nexpro.login_events "
                      "order by login_event_id limit 1")[0]


def csv_row(key, agent, updated_at):
    return f"{key},1,10001,2026-11-20T01:00:00Z,{agent},2026-11-20T01:00:00Z,{updated_at.isoformat()}\n"


def test_a_stale_csv_row_never_overwrites_a_newer_extracted_row(warehouse_with_logins, tmp_path):
    key, agent, updated_at = extracted_login(warehouse_with_logins)
    (tmp_path / "login_events_stale.csv").write_text(
        HEADER + csv_row(key, "stale export", updated_at - timedelta(days=1)))

    [outcome] = run_inbox(warehouse_with_logins, tmp_path)

    assert outcome.status == "loaded"
    assert query(warehouse_with_logins, "select user_agent, _source_file from raw_nexpro.login_events "
                                        "where login_event_id = %s", (key,)) == [(agent, None)]


def test_a_newer_csv_row_wins_and_an_older_extract_does_not_undo_it(nexpro_url, warehouse_with_logins, tmp_path):
    key, _agent, updated_at = extracted_login(warehouse_with_logins)
    (tmp_path / "login_events_fix.csv").write_text(HEADER + csv_row(key, "corrected", updated_at + timedelta(hours=1)))
    run_inbox(warehouse_with_logins, tmp_path)
    # The source row is touched, but its version is still older than the correction.
    with psycopg.connect(nexpro_url, autocommit=True) as connection:
        connection.execute("alter table login_events disable trigger user")
        connection.execute("update login_events set user_agent = 'touched', updated_at = updated_at "
                           "+ interval '1 minute' where login_event_id = %s", (key,))
    load_table(nexpro_url, warehouse_with_logins, NEXPRO_TABLES_BY_NAME["login_events"], source_name=SOURCE_NAME,
               raw_schema=RAW_SCHEMA, run_id="extract-2", overlap=timedelta(days=400))

    assert query(warehouse_with_logins, "select user_agent, _source_file from raw_nexpro.login_events "
                                        "where login_event_id = %s", (key,)) == [("corrected", "login_events_fix.csv")]


def test_a_full_reload_keeps_rows_that_came_from_csv_files(nexpro_url, warehouse_with_logins, tmp_path):
    key, _agent, updated_at = extracted_login(warehouse_with_logins)
    (tmp_path / "login_events_manual.csv").write_text(
        HEADER + csv_row(9000001, "manual only", updated_at)
        + csv_row(key, "corrected", updated_at + timedelta(hours=1)))
    run_inbox(warehouse_with_logins, tmp_path)
    before = count_logins(warehouse_with_logins)

    result = load_table(nexpro_url, warehouse_with_logins, NEXPRO_TABLES_BY_NAME["login_events"],
                        source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA, run_id="refresh", full_refresh=True)

    assert result.load_mode == "full" and result.rows_deleted == 0, "CSV-only keys are not deletes"
    assert count_logins(warehouse_with_logins) == before
    assert query(warehouse_with_logins, "select login_event_id, user_agent, _deleted_at from raw_nexpro.login_events "
                                        "where _source_file is not null order by 1") == [
        (key, "corrected", None), (9000001, "manual only", None)]


def test_a_timestamp_without_offset_is_tokyo_time(warehouse_with_logins, tmp_path):
    (tmp_path / "login_events_local.csv").write_text(
        HEADER + "9000001,1,10001,2026-11-20 10:30:00,Chrome,2026-11-20 10:30:00,2026-11-20 10:30:00\n")
    run_inbox(warehouse_with_logins, tmp_path)
    [(logged_in_at,)] = query(warehouse_with_logins, "select logged_in_at from raw_nexpro.login_events "
                                                     "where login_event_id = 9000001")
    assert logged_in_at == datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
