"""The firing ledger `ops.playbook_firings`: every firing is claimed before it acts and its outcome recorded
right after, so that whatever dies when, nothing is sent twice and nothing is lost silently.

A firing is keyed `company|playbook|date` (a Salesforce Task's or Opportunity's `Playbook_Firing_Key__c`
too); the day's own firings (the digest, the killswitch alert) are keyed `playbook|date`. Its life:

1. `claim()` inserts the row as `claimed` (or takes back a row whose last outcome may be tried again: failed,
   stopped, dry_run or a skip) in its own transaction, and answers which keys this run now owns. Only an
   owned firing is sent.
2. Right after each send, `record_outcome()` writes what happened (sent, created, failed ...) in its own
   short transaction, only over this run's claim.
3. A `claimed` row found by the next activation of the date means the process died between claim and
   outcome: `mark_unknown()` turns it `unknown`. An unknown firing is never re-sent by itself. A Salesforce
   record is looked up by its firing key (found: created; absent: claimed again and sent); an e-mail or a
   Slack post is listed in the run summary and the digest, and `csops activation resend` sends it again
   once a person has checked.

`activation_lock()` makes the activation of a date one process at a time (a Postgres advisory lock held
for as long as the task runs), which is what lets a `claimed` row found by the lock's holder mean "died".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg.rows import dict_row

LEDGER_TABLE = "ops.playbook_firings"
SUCCESS = ("sent", "created")
# What a later run may claim again and send: nothing went out (for a skip, the decision is made anew; the
# killswitch keeps the past from firing).
RETRYABLE = ("failed", "stopped", "dry_run", "skipped_cooldown", "skipped_no_recipient", "skipped_backfill")
# What may have reached someone: the cooldown and the onboarding sequence count these as fired.
MAYBE_FIRED = (*SUCCESS, "claimed", "unknown")
OUTCOMES = (*SUCCESS, "claimed", "unknown", "dry_run", "skipped_cooldown", "skipped_no_recipient",
            "skipped_backfill", "failed", "stopped")

LEDGER_DDL = f"""
create schema if not exists ops;
create table if not exists {LEDGER_TABLE} (
    firing_key      text primary key,
    company_id      text,
    playbook_key    text not null,
    run_date        date not null,
    action          text not null,
    outcome         text not null,
    detail          text,
    target          text,
    airflow_run_id  text,
    attempts        integer not null default 1,
    first_at        timestamptz not null default now(),
    at              timestamptz not null default now()
);
alter table {LEDGER_TABLE} drop constraint if exists playbook_firings_outcome_check;
alter table {LEDGER_TABLE} add constraint playbook_firings_outcome_check
    check (outcome in ({", ".join(f"'{outcome}'" for outcome in OUTCOMES)}));
create index if not exists playbook_firings_by_company on {LEDGER_TABLE} (company_id, playbook_key, run_date);
create index if not exists playbook_firings_by_date on {LEDGER_TABLE} (run_date);
"""


class ActivationBusy(RuntimeError):
    """Another activation of the same date is running: this one is refused before it does anything."""


@dataclass
class Firing:
    """One firing and its outcome, as the ledger records it."""

    firing_key: str
    company_id: str | None
    playbook_key: str
    run_date: date
    action: str
    outcome: str
    detail: str | None = None
    target: str | None = None


def day_firing(playbook_key: str, run_date: date, action: str, target: str | None = None) -> Firing:
    """A firing of the whole day (the digest, the killswitch alert): one per date."""
    return Firing(f"{playbook_key}|{run_date}", None, playbook_key, run_date, action, "claimed", None, target)


def ensure_ledger(connection: psycopg.Connection) -> None:
    with connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
        connection.execute(LEDGER_DDL)


@contextmanager
def activation_lock(connection: psycopg.Connection, run_date: date, what: str) -> Iterator[None]:
    """Hold the activation lock of `run_date` on `connection` (autocommit) for the block; refuse with
    ActivationBusy when another process holds it. The lock goes with the connection: a process that dies
    releases it."""
    key = f"csops.activation|{run_date}"
    if not connection.execute("select pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
        holder = connection.execute(
            """
            select a.pid, a.application_name, a.backend_start
            from pg_locks as l join pg_stat_activity as a on a.pid = l.pid
            where l.locktype = 'advisory' and l.granted and l.objid = hashtext(%s)::oid
            """, (key,)).fetchone()
        who = f" (Postgres backend {holder[0]}, connected since {holder[2]:%Y-%m-%d %H:%M:%S})" if holder else ""
        raise ActivationBusy(
            f"{what} for {run_date} refused: another activation of {run_date} is running{who}. Nothing was sent. "
            f"Wait for it to finish, then re-run this one if it is still needed (a re-run sends only what is left).")
    try:
        yield
    finally:
        connection.execute("select pg_advisory_unlock(hashtext(%s))", (key,))


def claim(connection: psycopg.Connection, firings: list[Firing], run_id: str | None) -> set[str]:
    """Claim `firings` for this run, in one transaction: a new key, or one whose last outcome may be tried again
    (RETRYABLE), becomes `claimed`. Returns the keys this run now owns; any other key (sent, created, claimed
    or unknown) is someone else's and must not be sent."""
    if not firings:
        return set()
    ensure_ledger(connection)
    owned = set()
    with connection.transaction(), connection.cursor() as cursor:
        for firing in firings:
            cursor.execute(
                f"""
                insert into {LEDGER_TABLE} (firing_key, company_id, playbook_key, run_date, action, outcome, detail,
                    target, airflow_run_id)
                values (%s, %s, %s, %s, %s, 'claimed', %s, %s, %s)
                on conflict (firing_key) do update set outcome = 'claimed', detail = excluded.detail,
                    target = excluded.target, airflow_run_id = excluded.airflow_run_id,
                    attempts = {LEDGER_TABLE}.attempts + 1, at = now()
                where {LEDGER_TABLE}.outcome = any(%s)
                returning firing_key
                """, (firing.firing_key, firing.company_id, firing.playbook_key, firing.run_date, firing.action,
                      firing.detail, firing.target, run_id, list(RETRYABLE)))
            if cursor.fetchone():
                owned.add(firing.firing_key)
    return owned


def reclaim(connection: psycopg.Connection, firing_keys: list[str], run_id: str | None, detail: str) -> set[str]:
    """Take `unknown` firings back as `claimed` (a person asked for them to be sent again, or Salesforce showed
    the record was never made). Returns the keys this run now owns."""
    if not firing_keys:
        return set()
    rows = connection.execute(
        f"update {LEDGER_TABLE} set outcome = 'claimed', detail = %s, airflow_run_id = %s, "
        f"attempts = attempts + 1, at = now() where firing_key = any(%s) and outcome = 'unknown' "
        f"returning firing_key", (detail, run_id, firing_keys)).fetchall()
    return {row[0] for row in rows}


def record_outcome(connection: psycopg.Connection, firings: list[Firing], run_id: str | None) -> None:
    """Write the outcome of firings this run claimed, in one short transaction (call it right after the send).
    A row no longer claimed by this run is left alone."""
    if not firings:
        return
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            f"""
            update {LEDGER_TABLE} set outcome = %s, detail = %s, target = coalesce(%s, target), at = now()
            where firing_key = %s and outcome = 'claimed' and airflow_run_id is not distinct from %s
            """, [(f.outcome, f.detail, f.target, f.firing_key, run_id) for f in firings])


def record_decisions(connection: psycopg.Connection, firings: list[Firing], run_id: str | None) -> None:
    """Record firings that send nothing (skips, stops, dry runs): a new row, or over a row whose outcome may
    be decided again (RETRYABLE). A row that is sent, created, claimed or unknown keeps its outcome."""
    if not firings:
        return
    ensure_ledger(connection)
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            f"""
            insert into {LEDGER_TABLE} (firing_key, company_id, playbook_key, run_date, action, outcome, detail,
                target, airflow_run_id)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (firing_key) do update set outcome = excluded.outcome, detail = excluded.detail,
                target = excluded.target, airflow_run_id = excluded.airflow_run_id,
                attempts = {LEDGER_TABLE}.attempts + 1, at = now()
            where {LEDGER_TABLE}.outcome = any(%s)
            """,
            [(f.firing_key, f.company_id, f.playbook_key, f.run_date, f.action, f.outcome, f.detail, f.target,
              run_id, list(RETRYABLE)) for f in firings])


def mark_unknown(connection: psycopg.Connection, run_date: date, keys: list[str] | None = None) -> int:
    """Turn the date's `claimed` firings (whose process died before recording an outcome) into `unknown`.
    Call it only while holding the date's activation lock. Returns how many."""
    ensure_ledger(connection)
    return connection.execute(
        f"update {LEDGER_TABLE} set outcome = 'unknown', at = now(), detail = 'the process sending it stopped "
        f"before recording whether it went out (claimed ' || to_char(at, 'YYYY-MM-DD HH24:MI:SS') || ')' "
        f"where run_date = %s and outcome = 'claimed' and (%s::text[] is null or firing_key = any(%s))",
        (run_date, keys, keys)).rowcount


def outcomes_of(connection: psycopg.Connection, firing_keys: list[str]) -> dict[str, str]:
    """The ledger's outcome of each key it holds."""
    ensure_ledger(connection)
    return dict(connection.execute(f"select firing_key, outcome from {LEDGER_TABLE} where firing_key = any(%s)",
                                   (firing_keys,)).fetchall())


def maybe_fired(connection: psycopg.Connection, company_ids: list[str]) -> dict[tuple[str, str], list[date]]:
    """(company, playbook) -> the run dates on which it may have reached someone (MAYBE_FIRED)."""
    fired = defaultdict(list)
    for company_id, playbook_key, run_date in connection.execute(
            f"select company_id, playbook_key, run_date from {LEDGER_TABLE} "
            f"where outcome = any(%s) and company_id = any(%s) order by run_date",
            (list(MAYBE_FIRED), company_ids)).fetchall():
        fired[(company_id, playbook_key)].append(run_date)
    return fired


def unknown_firings(connection: psycopg.Connection, run_date: date | None = None) -> list[dict]:
    """The firings whose fate is unknown (of `run_date`, or all), oldest first."""
    ensure_ledger(connection)
    return connection.cursor(row_factory=dict_row).execute(
        f"select firing_key, company_id, playbook_key, run_date, action, target, detail, at from {LEDGER_TABLE} "
        f"where outcome = 'unknown' and (%s::date is null or run_date = %s) order by run_date, firing_key",
        (run_date, run_date)).fetchall()


def latest_activated_date(connection: psycopg.Connection) -> date | None:
    """The latest run date anything was sent or created for (the activation's present)."""
    ensure_ledger(connection)
    return connection.execute(f"select max(run_date) from {LEDGER_TABLE} where outcome = any(%s)",
                              (list(MAYBE_FIRED),)).fetchone()[0]


def day_outcomes(connection: psycopg.Connection, run_date: date) -> list[dict]:
    """The ledger's firings of `run_date` per playbook, action and outcome (the day's own firings left out)."""
    ensure_ledger(connection)
    return connection.cursor(row_factory=dict_row).execute(
        f"""
        select playbook_key, action, outcome, count(*) as firings
        from {LEDGER_TABLE} where run_date = %s and company_id is not null
        group by playbook_key, action, outcome order by playbook_key, outcome
        """, (run_date,)).fetchall()
