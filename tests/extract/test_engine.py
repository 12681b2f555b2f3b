"""The Nexpro extract-load engine against real Postgres: idempotency, increments, drift, quarantine."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from csops.extract.engine import BOOKKEEPING_COLUMNS, ExtractError, SourceTable, ensure_schemas, load_table
from csops.extract.nexpro_tables import NEXPRO_TABLES, NEXPRO_TABLES_BY_NAME, RAW_SCHEMA, SOURCE_NAME


def load(nexpro_url, warehouse_url, table_name, run_id="run-1", **options):
    return load_table(nexpro_url, warehouse_url, NEXPRO_TABLES_BY_NAME[table_name], source_name=SOURCE_NAME,
                      raw_schema=RAW_SCHEMA, run_id=run_id, **options)


def snapshot(url, relation, order_by):
    """Every row of `relation` (without the loader's bookkeeping columns), in key order."""
    with psycopg.connect(url) as connection:
        cursor = connection.execute(f"select * from {relation} order by {order_by}")
        names = [column.name for column in cursor.description]
        keep = [index for index, name in enumerate(names) if name not in BOOKKEEPING_COLUMNS]
        return [tuple(row[index] for index in keep) for row in cursor.fetchall()]


def execute(url, statement, params=None):
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(statement, params)


def test_full_load_copies_every_table_exactly(nexpro_url, warehouse_url):
    for table in NEXPRO_TABLES:
        result = load(nexpro_url, warehouse_url, table.name)
        key = ", ".join(table.primary_key)
        assert result.load_mode == "full"
        assert snapshot(warehouse_url, f"raw_nexpro.{table.name}", key) == snapshot(nexpro_url, table.name, key)
        assert result.rows_read == result.rows_inserted > 0


def test_a_full_load_leaves_statistics_for_the_planner(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "login_events")
    columns_with_statistics = execute(warehouse_url, "select count(*) from pg_stats "
                                                     "where schemaname = 'raw_nexpro' and tablename = 'login_events'")
    assert columns_with_statistics.fetchone()[0] > 0, "analyzed as part of the load, not left to autovacuum"


def test_rerun_changes_nothing(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")
    before = snapshot(warehouse_url, "raw_nexpro.viewing_sessions", "viewing_session_id")
    loaded_at = execute(warehouse_url, "select max(_loaded_at) from raw_nexpro.viewing_sessions").fetchone()[0]

    again = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")

    assert again.load_mode == "incremental"
    assert again.rows_read > 0, "the safety overlap re-reads the last hour"
    assert (again.rows_inserted, again.rows_updated) == (0, 0)
    assert snapshot(warehouse_url, "raw_nexpro.viewing_sessions", "viewing_session_id") == before
    assert execute(warehouse_url, "select max(_loaded_at) from raw_nexpro.viewing_sessions").fetchone()[0] == loaded_at
    audit = execute(warehouse_url, "select count(*), max(rows_inserted) from ops.extract_runs "
                                   "where run_id = 'day-1' and table_name = 'viewing_sessions'").fetchone()
    assert audit == (1, 0), "a re-run replaces its audit row instead of adding one"


def test_increment_brings_inserts_and_updates_without_duplicates(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "webinars", run_id="day-1")
    execute(nexpro_url, "update webinars set status = 'cancelled', started_at = null, ended_at = null "
                        "where webinar_id = (select min(webinar_id) from webinars)")
    execute(nexpro_url, """
        insert into webinars (webinar_id, tenant_id, host_user_id, title, webinar_type, status, scheduled_start_at)
        select max(webinar_id) + 1, min(tenant_id), null, '新製品発表会 臨時', 'live', 'scheduled', now()
        from webinars
    """)

    result = load(nexpro_url, warehouse_url, "webinars", run_id="day-2")

    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    assert result.rows_read < 10, "only the overlap and the two changed rows are read"
    assert snapshot(warehouse_url, "raw_nexpro.webinars", "webinar_id") == snapshot(nexpro_url, "webinars",
                                                                                      "webinar_id")


def test_incremental_run_reads_from_watermark_minus_overlap(nexpro_url, warehouse_url):
    first = load(nexpro_url, warehouse_url, "login_events", run_id="day-1")
    second = load(nexpro_url, warehouse_url, "login_events", run_id="day-2", overlap=timedelta(days=3))
    assert second.watermark_from == first.watermark_to - timedelta(days=3)
    expected = execute(nexpro_url, "select count(*) from login_events where updated_at >= %s",
                       (second.watermark_from,)).fetchone()[0]
    assert second.rows_read == expected


def test_new_source_column_appears_in_raw(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "tenants", run_id="day-1")
    execute(nexpro_url, "alter table tenants add column region text")
    execute(nexpro_url, "update tenants set region = '関東' where tenant_id = (select min(tenant_id) from tenants)")

    result = load(nexpro_url, warehouse_url, "tenants", run_id="day-2")

    assert result.added_columns == ["region"]
    assert result.rows_updated == 1
    regions = execute(warehouse_url, "select region, count(*) from raw_nexpro.tenants group by 1 order by 1")
    assert regions.fetchall() == [("関東", 1), (None, 15)]


def test_null_and_duplicate_keys_are_quarantined_and_the_rest_loads(nexpro_url, warehouse_url):
    # Event tables in product DBs often have no key constraint; simulate one that let bad rows in.
    execute(nexpro_url, "alter table feature_events drop constraint feature_events_pkey, "
                        "alter column feature_event_id drop not null")
    execute(nexpro_url, """
        insert into feature_events (feature_event_id, tenant_id, feature_key, occurred_at)
        values (null, 10001, 'poll', now()), (1, 10001, 'survey', now())
    """)
    source_rows = execute(nexpro_url, "select count(*) from feature_events").fetchone()[0]

    result = load(nexpro_url, warehouse_url, "feature_events", run_id="day-1")

    assert result.rows_read == source_rows
    assert result.rows_quarantined == 2
    assert result.rows_inserted == source_rows - 2
    quarantined = execute(warehouse_url, "select reason, record from ops.quarantine order by quarantine_id").fetchall()
    reasons = [reason for reason, _record in quarantined]
    assert any(reason.startswith("null primary key (feature_event_id)") for reason in reasons)
    assert any(reason.startswith("duplicate primary key (feature_event_id) = (1)") for reason in reasons)
    kept = execute(warehouse_url, "select feature_key from raw_nexpro.feature_events where feature_event_id = 1")
    assert kept.fetchone()[0] == "survey", "the most recently updated copy of a duplicated key is kept"
    null_key_record = next(record for reason, record in quarantined if reason.startswith("null primary key"))
    assert null_key_record["feature_key"] == "poll" and null_key_record["tenant_id"] == 10001, "the whole row is kept"


def test_value_that_no_longer_fits_the_raw_type_is_quarantined(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")
    # Schema drift of the bad kind: the app turns watch_seconds into text and writes a non-number.
    execute(nexpro_url, "alter table viewing_sessions alter column watch_seconds type text")
    execute(nexpro_url, "update viewing_sessions set watch_seconds = '12分' where viewing_session_id = 1")
    execute(nexpro_url, "update viewing_sessions set watch_seconds = '600' where viewing_session_id = 2")

    result = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-2")

    assert result.retyped_columns == ["watch_seconds"]
    assert result.rows_quarantined == 1
    assert result.rows_updated == 1
    reason, record = execute(warehouse_url, "select reason, record from ops.quarantine").fetchone()
    assert reason.startswith("column watch_seconds: '12分' is not a valid integer")
    assert record["viewing_session_id"] == 1
    assert execute(warehouse_url, "select watch_seconds from raw_nexpro.viewing_sessions "
                                  "where viewing_session_id = 2").fetchone()[0] == 600


def test_missing_source_table_fails_with_a_clear_error_and_an_audit_row(nexpro_url, warehouse_url):
    ghost = SourceTable("webinar_surveys", ("survey_id",))
    with pytest.raises(ExtractError, match="source table public.webinar_surveys does not exist"):
        load_table(nexpro_url, warehouse_url, ghost, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA, run_id="r")
    status, error = execute(warehouse_url, "select status, error from ops.extract_runs").fetchone()
    assert status == "failed" and "webinar_surveys" in error


def test_failed_load_leaves_the_raw_table_untouched(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "users", run_id="day-1")
    before = snapshot(warehouse_url, "raw_nexpro.users", "user_id")
    execute(nexpro_url, "update users set display_name = 'changed'")
    execute(nexpro_url, "update users set display_name = 'boom' where user_id = (select max(user_id) from users)")
    # The warehouse refuses one row while the full reload is already under way: after the truncate and
    # most of the COPY. Everything before it must roll back.
    execute(warehouse_url, "alter table raw_nexpro.users add constraint no_boom check (display_name <> 'boom') "
                           "not valid")

    with pytest.raises(psycopg.errors.CheckViolation):
        load(nexpro_url, warehouse_url, "users", run_id="day-2", full_refresh=True)

    assert snapshot(warehouse_url, "raw_nexpro.users", "user_id") == before
    assert execute(warehouse_url, "select status, error from ops.extract_runs where run_id = 'day-2'"
                   ).fetchone()[0] == "failed"
    watermarks = execute(warehouse_url, "select count(distinct watermark) from ops.extract_watermarks").fetchone()
    assert watermarks == (1,)


def test_source_error_mid_copy_is_raised_and_nothing_is_written(nexpro_url, warehouse_url):
    from psycopg import errors, sql

    from csops.extract.engine import stream

    with psycopg.connect(nexpro_url, autocommit=True) as source, \
            psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        warehouse.execute("create table target (n integer)")
        with pytest.raises(errors.DivisionByZero):  # noqa: SIM117 - the transaction must wrap the failure
            with warehouse.transaction():
                stream(source, sql.SQL("select 100 / (3 - n) from generate_series(1, 5) as n"),
                       warehouse.cursor(), sql.Identifier("target"), sql.Identifier("n"), "test")
        assert warehouse.execute("select count(*) from target").fetchone()[0] == 0
        assert source.execute("select 1").fetchone() == (1,), "the source connection is usable afterwards"
        with pytest.raises(errors.UndefinedTable), warehouse.transaction():
            stream(source, sql.SQL("select n from no_such_table"), warehouse.cursor(), sql.Identifier("target"),
                   sql.Identifier("n"), "test")
        assert source.execute("select 2").fetchone() == (2,)


def test_parallel_first_loads_of_every_table_do_not_race(nexpro_url, warehouse_url):
    """In Airflow the table loads run side by side; creating schemas and ops tables must not collide."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(NEXPRO_TABLES)) as pool:
        results = list(pool.map(lambda table: load(nexpro_url, warehouse_url, table.name, run_id="parallel"),
                                NEXPRO_TABLES))
    assert all(result.status == "succeeded" for result in results)
    assert execute(warehouse_url, "select count(*) from ops.extract_runs where status = 'succeeded'"
                   ).fetchone()[0] == len(NEXPRO_TABLES)


def test_increment_checks_keys_once_the_source_stops_enforcing_them(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "feature_events", run_id="day-1")
    execute(nexpro_url, "alter table feature_events drop constraint feature_events_pkey, "
                        "alter column feature_event_id drop not null")
    execute(nexpro_url, """
        insert into feature_events (feature_event_id, tenant_id, feature_key, occurred_at)
        values (null, 10001, 'poll', now()), (900001, 10001, 'survey', now()), (900001, 10001, 'qa', now())
    """)

    result = load(nexpro_url, warehouse_url, "feature_events", run_id="day-2")

    assert (result.rows_quarantined, result.rows_inserted) == (2, 1)
    reasons = [reason for (reason,) in execute(warehouse_url, "select reason from ops.quarantine").fetchall()]
    assert len(reasons) == 2 and any(reason.startswith("duplicate primary key") for reason in reasons)


def test_dropped_raw_table_is_reloaded_in_full_although_a_watermark_exists(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "webinars", run_id="day-1")
    execute(warehouse_url, "drop table raw_nexpro.webinars")

    result = load(nexpro_url, warehouse_url, "webinars", run_id="day-2")

    assert result.load_mode == "full"
    assert snapshot(warehouse_url, "raw_nexpro.webinars", "webinar_id") == snapshot(nexpro_url, "webinars",
                                                                                      "webinar_id")


def test_emptied_raw_table_is_reloaded_in_full(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "users", run_id="day-1")
    execute(warehouse_url, "truncate raw_nexpro.users")
    result = load(nexpro_url, warehouse_url, "users", run_id="day-2")
    assert result.load_mode == "full" and result.rows_inserted == result.rows_read > 0


def test_a_future_dated_row_does_not_hide_later_changes(nexpro_url, warehouse_url):
    execute(nexpro_url, "alter table users disable trigger user")
    execute(nexpro_url, "update users set updated_at = now() + interval '30 days' "
                        "where user_id = (select min(user_id) from users)")
    first = load(nexpro_url, warehouse_url, "users", run_id="day-1")
    source_now = execute(nexpro_url, "select now()").fetchone()[0]
    assert first.watermark_to <= source_now, "the watermark never passes the source's clock"

    execute(nexpro_url, "update users set display_name = '変更後', updated_at = now() "
                        "where user_id = (select max(user_id) from users)")
    second = load(nexpro_url, warehouse_url, "users", run_id="day-2")

    assert second.rows_updated == 1
    changed = execute(warehouse_url, "select display_name from raw_nexpro.users "
                                     "where user_id = (select max(user_id) from raw_nexpro.users)").fetchone()
    assert changed == ("変更後",)


def test_hard_deletes_are_flagged_kept_and_unflagged_when_the_row_returns(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "feature_events", run_id="day-1")
    gone = execute(nexpro_url, "delete from feature_events where feature_event_id in (1, 2) returning *").fetchall()

    second = load(nexpro_url, warehouse_url, "feature_events", run_id="day-2")

    assert second.rows_deleted == 2
    flagged = execute(warehouse_url, "select feature_event_id, _deleted_at is not null from raw_nexpro.feature_events "
                                     "where feature_event_id in (1, 2, 3) order by 1").fetchall()
    assert flagged == [(1, True), (2, True), (3, False)], "deleted rows stay, flagged; others are untouched"
    audit = execute(warehouse_url, "select rows_deleted from ops.extract_runs where run_id = 'day-2'").fetchone()
    assert audit == (2,)

    refreshed = load(nexpro_url, warehouse_url, "feature_events", run_id="day-3", full_refresh=True)
    assert refreshed.rows_deleted == 0, "already flagged"
    assert execute(warehouse_url, "select count(*) from raw_nexpro.feature_events where _deleted_at is not null"
                   ).fetchone()[0] == 2, "a full refresh keeps the trace of deleted rows"

    with psycopg.connect(nexpro_url, autocommit=True) as connection, \
            connection.cursor().copy("copy feature_events from stdin") as copy:
        copy.write_row(gone[0])
    load(nexpro_url, warehouse_url, "feature_events", run_id="day-4")
    assert execute(warehouse_url, "select feature_event_id from raw_nexpro.feature_events "
                                  "where _deleted_at is not null").fetchall() == [(2,)]


def test_the_same_bad_row_seen_by_two_runs_is_quarantined_once(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")
    execute(nexpro_url, "alter table viewing_sessions alter column watch_seconds type text")
    execute(nexpro_url, "update viewing_sessions set watch_seconds = '12分' where viewing_session_id = 1")

    first = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-2")
    second = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-3")  # the overlap re-reads it

    assert first.rows_quarantined == second.rows_quarantined == 1
    rows = execute(warehouse_url, "select run_id, last_seen_run_id, times_seen from ops.quarantine").fetchall()
    assert rows == [("day-2", "day-3", 2)]


def test_enum_and_domain_columns_load_as_their_base_types(nexpro_url, warehouse_url):
    execute(nexpro_url, """
        create type webinar_status as enum ('scheduled', 'held', 'cancelled');
        create domain positive_seconds as integer check (value >= 0);
        alter table webinars drop constraint webinars_status_check,
            alter column status type webinar_status using status::webinar_status;
        alter table viewing_sessions alter column watch_seconds type positive_seconds;
    """)

    load(nexpro_url, warehouse_url, "webinars")
    load(nexpro_url, warehouse_url, "viewing_sessions")

    types = execute(warehouse_url, """
        select table_name, data_type from information_schema.columns
        where table_schema = 'raw_nexpro' and column_name in ('status', 'watch_seconds') order by 1
    """).fetchall()
    assert types == [("viewing_sessions", "integer"), ("webinars", "text")]
    assert snapshot(warehouse_url, "raw_nexpro.webinars", "webinar_id") == snapshot(
        nexpro_url, "(select webinar_id, tenant_id, host_user_id, title, webinar_type, status::text, "
                    "scheduled_start_at, started_at, ended_at, created_at, updated_at from webinars) as w",
        "webinar_id")


def test_a_load_starting_beside_a_running_one_takes_no_lock_on_the_ops_tables(warehouse_url):
    """Loads run in parallel: once the ops tables are current, preparing them must not wait for (or deadlock
    with) a load whose transaction holds them."""
    with psycopg.connect(warehouse_url, autocommit=True) as first:
        ensure_schemas(first, "raw_nexpro")
    with psycopg.connect(warehouse_url) as running, psycopg.connect(warehouse_url, autocommit=True) as starting:
        running.execute("insert into ops.extract_watermarks (source_name, table_name, watermark) "
                        "values ('nexpro', 'users', '2026-11-20')")
        running.execute("lock table ops.extract_runs, ops.quarantine in row exclusive mode")
        starting.execute("set lock_timeout = '2s'")
        ensure_schemas(starting, "raw_nexpro", "raw_salesforce")
        assert starting.execute("select to_regnamespace('raw_salesforce') is not null").fetchone()[0]
        running.rollback()


def test_a_quarantined_row_does_not_hide_a_hard_delete(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")
    # One new row that cannot load (a non-number in a number column) and one row deleted: the source still
    # has as many rows as raw has live ones.
    execute(nexpro_url, "alter table viewing_sessions alter column watch_seconds type text")
    execute(nexpro_url, """
        insert into viewing_sessions
        select * from jsonb_populate_record(null::viewing_sessions, (
            select to_jsonb(session) || jsonb_build_object(
                'viewing_session_id', (select max(viewing_session_id) + 1 from viewing_sessions),
                'watch_seconds', '12分', 'updated_at', now())
            from viewing_sessions as session where viewing_session_id = 1))""")
    execute(nexpro_url, "delete from viewing_sessions where viewing_session_id = 2")

    result = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-2")

    assert (result.rows_quarantined, result.rows_deleted) == (1, 1)
    assert execute(warehouse_url, "select viewing_session_id from raw_nexpro.viewing_sessions "
                                  "where _deleted_at is not null").fetchall() == [(2,)]


def test_a_row_quarantined_during_a_full_reload_keeps_its_last_good_version(nexpro_url, warehouse_url):
    load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-1")
    before = dict(execute(warehouse_url, "select viewing_session_id, watch_seconds "
                                         "from raw_nexpro.viewing_sessions").fetchall())
    execute(nexpro_url, "alter table viewing_sessions alter column watch_seconds type text")
    execute(nexpro_url, "update viewing_sessions set watch_seconds = '12分', updated_at = now() "
                        "where viewing_session_id = 1")
    execute(nexpro_url, "update viewing_sessions set watch_seconds = '600', updated_at = now() "
                        "where viewing_session_id = 2")

    result = load(nexpro_url, warehouse_url, "viewing_sessions", run_id="day-2", full_refresh=True)

    assert result.load_mode == "full" and (result.rows_quarantined, result.rows_deleted) == (1, 0)
    after = dict(execute(warehouse_url, "select viewing_session_id, watch_seconds from raw_nexpro.viewing_sessions "
                                        "where _deleted_at is null").fetchall())
    assert after.keys() == before.keys(), "no row vanished with the reload"
    assert after[1] == before[1], "the quarantined row keeps the version loaded before"
    assert after[2] == 600
    reason, record = execute(warehouse_url, "select reason, record from ops.quarantine").fetchone()
    assert record["viewing_session_id"] == 1 and "'12分' is not a valid integer" in reason
