"""The daily write-back to Salesforce: diff-only, within the API budget, safe to re-run.

What is written comes from the dbt models in `activation` (dbt_project/models/activation/), one per
Salesforce object, one row per record, columns named as the Salesforce fields (`SYNC_OBJECTS`). How:

1. Each model must have been built by dbt for the run date (`ops.dbt_node_results` says for which date it
   was built last); else nothing is sent. Every row of a model is hashed (md5 of the row as JSON) and
   compared with the sync ledger `ops.sync_ledger`, which holds per record the hash of the values
   Salesforce last accepted. Only
   rows whose hash differs (new records, changed values) are pending, plus the records Salesforce rejected
   before and never accepted since (`ops.sync_rejections`, kept with their values, so a record the model
   no longer holds is still retried), except a record refused RETRY_LIMIT (5) times with the values it
   still has: it waits, open, until its values change. Nothing pending: no API call at all.
2. The budget is checked once, before anything is sent: `/limits` (one call) against the calls the
   pending rows need. When they would eat into the reserve (`settings.salesforce_api_reserve()`), nothing
   is sent and the report says so; the next run sends it.
3. Each object's pending rows go through `salesforce_writer.upsert` (sObject Collections or a Bulk API 2.0
   job by size). As each call or job answers, accepted records get their hash in the ledger and their open
   rejection resolved; rejected ones are kept in `ops.sync_rejections` with Salesforce's error code and
   message, first and last seen, attempts. A call refused for good stops the write-back there; what was
   accepted before is in the ledger, so the next run sends only the rest.
4. The session stops before a call would eat into the budget's reserve (the budget was read before, but
   retries, Bulk status polls and other integrations spend it too): a clean stop, not an error. What was
   answered is in the ledger and the rejections; a Bulk job left in Salesforce is remembered in
   `ops.sync_bulk_jobs` with the values it holds. The next run first collects such jobs
   (`salesforce_writer.collect_bulk_job`: a finished job's results go to the ledger, an unclosed one is
   aborted, one still running holds its records back), then sends only what is still pending.

Re-running a date sends nothing new: the ledger already holds what was accepted. To send an object again in
full, `resend` makes the ledger forget it (docs/operations.md). `dry_run` computes what would be sent and calls
nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from simple_salesforce import Salesforce

from csops.activation import salesforce_writer
from csops.activation.salesforce_writer import Budget, BudgetReserveReached, BulkJob, RecordOutcome, WriteError
from csops.extract.engine import ensure_schemas
from csops.extract.salesforce import SalesforceApi

log = logging.getLogger(__name__)

SYNC_SCHEMA = "activation"
# A record Salesforce refused this many times with the same values is not sent again until its values
# change (it stays open in ops.sync_rejections): a permanent refusal does not cost calls every day.
RETRY_LIMIT = 5


class WritebackError(RuntimeError):
    """The write-back cannot start: what to fix is in the message."""


@dataclass(frozen=True)
class SyncObject:
    """A Salesforce object the write-back keeps in step with a dbt model: records keyed by `key_field`."""

    object_name: str
    key_field: str  # an external id field, or Id (the records exist already and are updated)
    model: str


SYNC_OBJECTS = (
    SyncObject("Account", "Id", "sync_account_health"),
    SyncObject("Health_Score__c", "Health_Score_Key__c", "sync_health_score_history"),
    SyncObject("Usage__c", "Usage_Key__c", "sync_usage"),
    SyncObject("Revenue__c", "Revenue_Key__c", "sync_revenue"),
)


@dataclass
class ObjectReport:
    """One object's write-back: rows in its model, how many changed, were sent, rejected, retried."""

    object_name: str
    model: str
    considered: int = 0  # rows in the model
    changed: int = 0  # rows whose values differ from what Salesforce last accepted (new ones included)
    retried: int = 0  # of the rows sent, those Salesforce had rejected before
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    api_calls: int = 0
    method: str = "none"
    seconds: float = 0.0
    given_up: int = 0  # open rejections refused RETRY_LIMIT times with the values the model still holds
    collected: int = 0  # records answered by a Bulk job an earlier run left in Salesforce (in accepted/rejected)
    in_running_job: int = 0  # records held back: a Bulk job an earlier run left is still applying them
    error: str | None = None


@dataclass
class WritebackReport:
    """What one write-back did, per object, with the budget it saw and why it stopped (if it did)."""

    run_date: date
    run_id: str
    dry_run: bool = False
    objects: list[ObjectReport] = field(default_factory=list)
    budget: Budget | None = None
    budget_calls: int = 0  # the /limits read
    stopped: str | None = None  # the budget's reserve was reached: before anything was sent, or midway
    error: str | None = None  # a call refused for good: the write-back stopped there

    @property
    def api_calls(self) -> int:
        return self.budget_calls + sum(report.api_calls for report in self.objects)

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.error is None

    def as_dict(self) -> dict:
        """The report as plain data (an Airflow task's return value)."""
        return {"run_date": self.run_date.isoformat(), "run_id": self.run_id, "dry_run": self.dry_run,
                "api_calls": self.api_calls, "stopped": self.stopped, "error": self.error,
                "objects": [{"object": r.object_name, "considered": r.considered, "changed": r.changed,
                             "sent": r.sent, "accepted": r.accepted, "rejected": r.rejected, "retried": r.retried,
                             "api_calls": r.api_calls, "method": r.method, "seconds": round(r.seconds, 3),
                             "given_up": r.given_up, "collected": r.collected, "in_running_job": r.in_running_job,
                             "error": r.error} for r in self.objects]}

    def lines(self) -> list[str]:
        """The report as text, one line per object (for the log and the run summary)."""
        head = f"Salesforce write-back for {self.run_date}{' (dry run)' if self.dry_run else ''}: "
        if self.stopped:
            head += f"stopped by the API budget — {self.stopped}"
        elif self.error:
            head += f"stopped by an error — {self.error}"
        else:
            head += f"{self.api_calls} API call(s)"
        return [head] + [
            f"  {r.object_name:<16} {r.considered:>8,} rows, {r.changed:>7,} changed, {r.sent:>7,} sent "
            f"({r.retried:,} retried), {r.accepted:>7,} accepted, {r.rejected:>5,} rejected, {r.api_calls:>3} "
            f"call(s) via {r.method}, {r.seconds:.1f}s"
            + (f", {r.given_up:,} refused {RETRY_LIMIT} times held back" if r.given_up else "")
            + (f", {r.collected:,} answered by an earlier run's Bulk job" if r.collected else "")
            + (f", {r.in_running_job:,} held back in an earlier run's Bulk job still running"
               if r.in_running_job else "")
            + (f" — {r.error}" if r.error else "")
            for r in self.objects]


@dataclass
class Pending:
    """A record to send: its key, the hash of its values, the values, and whether it was rejected before."""

    key: str
    values_hash: str
    record: dict
    was_rejected: bool


def write_back(warehouse_url: str, sf: Salesforce | SalesforceApi | None, run_date: date | str, *,
               dry_run: bool = False, run_id: str | None = None, objects: Sequence[SyncObject] = SYNC_OBJECTS,
               bulk_threshold: int | None = None) -> WritebackReport:
    """Send to Salesforce what changed in the `activation` sync models since Salesforce last accepted it.

    `sf` (a logged-in simple-salesforce client, or the extract's `SalesforceApi`) may be None for a dry run. The
    models must have been built for `run_date` (dbt with that run_date).
    """
    run_date = date.fromisoformat(run_date) if isinstance(run_date, str) else run_date
    report = WritebackReport(run_date=run_date, run_id=run_id or f"writeback-{run_date.isoformat()}",
                             dry_run=dry_run)
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse)
        # One write-back at a time (held until this connection closes): two would send the same rows twice.
        if not warehouse.execute("select pg_try_advisory_lock(hashtext('csops.writeback'))").fetchone()[0]:
            raise WritebackError("another write-back is running on this warehouse: nothing was sent; run again "
                                 "once it has finished")
        warehouse.execute("analyze ops.sync_ledger, ops.sync_rejections")
        for sync in objects:
            check_built_for(warehouse, sync, run_date)
            report.objects.append(ObjectReport(sync.object_name, sync.model))
        api = None if sf is None else salesforce_writer.salesforce_api(sf)
        held = {}
        if not dry_run and has_left_jobs(warehouse, objects):
            if api is None:
                raise WritebackError("write_back needs a Salesforce client (sf) unless dry_run=True")
            held = collect_left_jobs(warehouse, api, objects, report)
            if not report.ok:
                log.warning("\n".join(report.lines()))
                return report
        pending = {}
        for sync, object_report in zip(objects, report.objects, strict=True):
            rows = read_pending(warehouse, sync, object_report)
            in_job = held.get(sync.object_name, set())
            object_report.in_running_job = sum(1 for row in rows if row.key in in_job)
            pending[sync.object_name] = [row for row in rows if row.key not in in_job]
        total = sum(len(rows) for rows in pending.values())
        if dry_run or total == 0:
            log.info("\n".join(report.lines()))
            return report
        if api is None:
            raise WritebackError("write_back needs a Salesforce client (sf) unless dry_run=True")
        calls = sum(salesforce_writer.estimate_calls(len(rows), bulk_threshold) for rows in pending.values())
        unsent = ", ".join(f"{name}: {len(rows):,} record(s)" for name, rows in pending.items() if rows)
        report.budget_calls = 1
        try:
            report.budget = salesforce_writer.check_budget(api, calls, unsent=unsent)
        except BudgetReserveReached as refused:
            report.budget, report.stopped = refused.budget, str(refused)
            log.warning("\n".join(report.lines()))
            return report
        for sync, object_report in zip(objects, report.objects, strict=True):
            rows = pending[sync.object_name]
            if rows:
                try:
                    send(warehouse, api, sync, rows, object_report, report, bulk_threshold)
                except WriteError as error:
                    if error.stopped_by_budget:
                        report.stopped = str(error)
                    else:
                        object_report.error = report.error = str(error)
                    break
    log.info("\n".join(report.lines()))
    return report


def check_built_for(warehouse: psycopg.Connection, sync: SyncObject, run_date: date) -> None:
    """Refuse to send a model dbt last built for another run date (ops.dbt_node_results says which).

    A model with no recorded build (built outside dbt's run-results hook) is taken as it is.
    """
    if warehouse.execute("select to_regclass('ops.dbt_node_results')").fetchone()[0] is None:
        return
    built = warehouse.execute(
        "select run_date from ops.dbt_node_results where resource_type = 'model' and node_name = %s "
        "and status = 'success' order by recorded_at desc limit 1", (sync.model,)).fetchone()
    if built and built[0] is not None and built[0] != run_date:
        raise WritebackError(f"{SYNC_SCHEMA}.{sync.model} was last built for {built[0]}, not {run_date}: nothing "
                             f"was sent. Build the activation models for {run_date} first (the day's dbt build, "
                             f"or dbt build --select {sync.model} --vars '{{run_date: {run_date}}}')")


def read_pending(warehouse: psycopg.Connection, sync: SyncObject, report: ObjectReport) -> list[Pending]:
    """The model's rows Salesforce has not accepted as they are, and the open rejections it no longer holds."""
    relation = sql.Identifier(SYNC_SCHEMA, sync.model)
    key = sql.Identifier(sync.key_field)
    if warehouse.execute("select to_regclass(%s)", (f"{SYNC_SCHEMA}.{sync.model}",)).fetchone()[0] is None:
        raise WritebackError(f"{SYNC_SCHEMA}.{sync.model} does not exist: build the activation models "
                           f"(dbt build --select {sync.model}) for the run date before the write-back")
    # Fresh statistics first: dbt has just rebuilt the model and the last run grew the ledger; planned without
    # them, the joins below can take minutes instead of a second at 100,000s of rows.
    warehouse.execute(sql.SQL("analyze {}").format(relation))
    # The model is read directly in each statement (no shared CTE), so Postgres hash-joins it with the ledger.
    parts = {"relation": relation, "key": key, "hash": sql.SQL("md5(to_jsonb(model)::text)")}
    params = {"object": sync.object_name, "limit": RETRY_LIMIT}
    with warehouse.transaction():
        # An open rejection whose record is back to the values Salesforce holds is moot.
        warehouse.execute(sql.SQL("""
            update ops.sync_rejections as rejection set resolved_at = now()
            from {relation} as model
            join ops.sync_ledger as ledger
                on ledger.object_name = %(object)s and ledger.external_id = cast(model.{key} as text)
            where rejection.object_name = %(object)s and rejection.resolved_at is null
                and rejection.external_id = cast(model.{key} as text) and ledger.values_hash = {hash}
        """).format(**parts), params)
        report.considered = warehouse.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()[0]
        rows = warehouse.execute(sql.SQL("""
            select cast(model.{key} as text), {hash}, to_jsonb(model), rejection.external_id is not null, true
            from {relation} as model
            left join ops.sync_ledger as ledger
                on ledger.object_name = %(object)s and ledger.external_id = cast(model.{key} as text)
            left join ops.sync_rejections as rejection
                on rejection.object_name = %(object)s and rejection.external_id = cast(model.{key} as text)
                and rejection.resolved_at is null
            where ledger.values_hash is distinct from {hash}
                and not coalesce(rejection.attempts >= %(limit)s and rejection.values_hash = {hash}, false)
            union all
            select rejection.external_id, rejection.values_hash, rejection.record, true, false
            from ops.sync_rejections as rejection
            where rejection.object_name = %(object)s and rejection.resolved_at is null
                and rejection.attempts < %(limit)s
                and not exists (select from {relation} as model
                                where cast(model.{key} as text) = rejection.external_id)
            order by 1
        """).format(**parts), params).fetchall()
        report.given_up = warehouse.execute(
            "select count(*) from ops.sync_rejections where object_name = %(object)s and resolved_at is null "
            "and attempts >= %(limit)s", params).fetchone()[0]
    report.changed = sum(1 for row in rows if row[4])
    report.retried = sum(1 for row in rows if row[3])
    return [Pending(external_id, values_hash, record, was_rejected)
            for external_id, values_hash, record, was_rejected, _in_model in rows]


def send(warehouse: psycopg.Connection, api: SalesforceApi, sync: SyncObject, rows: list[Pending],
         report: ObjectReport, run: WritebackReport, bulk_threshold: int | None) -> None:
    """Upsert the pending rows, recording each call's outcomes in the ledger as they come.

    A write that stops early raises its `WriteError` once a Bulk job it left in Salesforce is remembered.
    """
    started = time.monotonic()
    by_key = {row.key: row for row in rows}
    report.sent = len(rows)

    def record(outcomes: list[RecordOutcome]) -> None:
        record_outcomes(warehouse, sync, by_key, outcomes, run)
        report.accepted += sum(1 for outcome in outcomes if outcome.success)
        report.rejected += sum(1 for outcome in outcomes if not outcome.success)

    try:
        result = salesforce_writer.upsert(api, sync.object_name, sync.key_field, [row.record for row in rows],
                                          bulk_threshold=bulk_threshold, on_outcomes=record)
    except WriteError as error:
        report.method = error.result.method
        report.api_calls += error.result.api_calls
        job = error.result.open_job
        in_closed_job = set(job.keys) if job is not None and job.closed else set()
        report.sent = len(error.result.outcomes) + len(in_closed_job)
        if job is not None:
            remember_job(warehouse, job, by_key, run)
        raise
    finally:
        report.seconds = time.monotonic() - started
    report.method = result.method
    report.api_calls += result.api_calls
    for rejected in result.failed[:5]:
        log.warning("Salesforce %s %s rejected: %s %s", sync.object_name, rejected.key, rejected.error_code,
                    rejected.message)


def remember_job(warehouse: psycopg.Connection, job: BulkJob, by_key: dict[str, Pending],
                 run: WritebackReport) -> None:
    """Keep a Bulk job left in Salesforce, with the values of its records, for the next run to collect."""
    with warehouse.transaction(), warehouse.cursor() as cursor:
        cursor.executemany("""
            insert into ops.sync_bulk_jobs (job_id, object_name, key_field, external_id, values_hash, record, closed,
                run_id, run_date)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (job_id, external_id) do update set closed = excluded.closed
        """, [(job.job_id, job.object_name, job.external_id_field, key, by_key[key].values_hash,
               Jsonb(by_key[key].record), job.closed, run.run_id, run.run_date) for key in job.keys])
    log.warning("Salesforce %s: Bulk job %s (%s, %s record(s)) left in Salesforce; the next write-back collects it",
                job.object_name, job.job_id, "closed" if job.closed else "open", len(job.keys))


def has_left_jobs(warehouse: psycopg.Connection, objects: Sequence[SyncObject]) -> bool:
    return warehouse.execute("select exists (select from ops.sync_bulk_jobs where object_name = any(%s))",
                             ([sync.object_name for sync in objects],)).fetchone()[0]


def collect_left_jobs(warehouse: psycopg.Connection, api: SalesforceApi, objects: Sequence[SyncObject],
                      run: WritebackReport) -> dict[str, set[str]]:
    """Collect the Bulk jobs earlier runs left in Salesforce (`ops.sync_bulk_jobs`), oldest first.

    A finished job's outcomes go to the ledger and the rejections as if this run had sent it; an unclosed job is
    aborted and its records are pending again; both are then forgotten. Returns, per object, the keys of the
    records a job still running holds (not sent this run). A stop (budget or error) is set on `run`.
    """
    syncs = {sync.object_name: sync for sync in objects}
    reports = {report.object_name: report for report in run.objects}
    rows = warehouse.execute("""
        select job_id, object_name, key_field, bool_and(closed),
            array_agg(external_id order by external_id), array_agg(values_hash order by external_id),
            array_agg(record order by external_id)
        from ops.sync_bulk_jobs where object_name = any(%s)
        group by job_id, object_name, key_field order by min(left_at), job_id
    """, (list(syncs),)).fetchall()
    held: dict[str, set[str]] = {}
    for job_id, object_name, key_field, closed, keys, hashes, records in rows:
        job = BulkJob(job_id, object_name, key_field, tuple(keys), closed)
        by_key = {key: Pending(key, values_hash, record, False)
                  for key, values_hash, record in zip(keys, hashes, records, strict=True)}
        report = reports[object_name]
        try:
            result = salesforce_writer.collect_bulk_job(api, job)
        except WriteError as error:
            report.api_calls += error.result.api_calls
            if error.stopped_by_budget:
                run.stopped = str(error)
            else:
                report.error = run.error = str(error)
            return held
        report.api_calls += result.api_calls
        report.method = "bulk"
        if result.outcomes:
            record_outcomes(warehouse, syncs[object_name], by_key, result.outcomes, run)
            report.collected += len(result.outcomes)
            report.accepted += len(result.succeeded)
            report.rejected += len(result.failed)
        if result.open_job is None:
            warehouse.execute("delete from ops.sync_bulk_jobs where job_id = %s", (job_id,))
            log.info("Salesforce %s: Bulk job %s collected: %s answered, %s to send again", object_name, job_id,
                     len(result.outcomes), len(result.unanswered))
        else:
            held.setdefault(object_name, set()).update(job.keys)
            log.warning("Salesforce %s: Bulk job %s is still running; its %s record(s) wait for it", object_name,
                        job_id, len(job.keys))
    return held


def record_outcomes(warehouse: psycopg.Connection, sync: SyncObject, by_key: dict[str, Pending],
                    outcomes: list[RecordOutcome], run: WritebackReport) -> None:
    """Accepted records: their hash into the ledger, their rejection resolved. Rejected ones: kept."""
    accepted = [outcome for outcome in outcomes if outcome.success]
    rejected = [outcome for outcome in outcomes if not outcome.success]
    with warehouse.transaction(), warehouse.cursor() as cursor:
        if accepted:
            cursor.executemany("""
                insert into ops.sync_ledger (object_name, external_id, values_hash, record_id, sent_at, run_id,
                    run_date)
                values (%s, %s, %s, %s, now(), %s, %s)
                on conflict (object_name, external_id) do update set values_hash = excluded.values_hash,
                    record_id = coalesce(excluded.record_id, ops.sync_ledger.record_id), sent_at = excluded.sent_at,
                    run_id = excluded.run_id, run_date = excluded.run_date
            """, [(sync.object_name, outcome.key, by_key[outcome.key].values_hash, outcome.record_id, run.run_id,
                   run.run_date) for outcome in accepted])
            cursor.execute("update ops.sync_rejections set resolved_at = now() where object_name = %s "
                           "and external_id = any(%s) and resolved_at is null",
                           (sync.object_name, [outcome.key for outcome in accepted]))
        if rejected:
            cursor.executemany("""
                insert into ops.sync_rejections as rejection (object_name, external_id, values_hash, record,
                    error_code, message, first_seen_at, last_seen_at, attempts, run_id, run_date)
                values (%s, %s, %s, %s, %s, %s, now(), now(), 1, %s, %s)
                on conflict (object_name, external_id) do update set values_hash = excluded.values_hash,
                    record = excluded.record, error_code = excluded.error_code, message = excluded.message,
                    first_seen_at = case when rejection.resolved_at is null then rejection.first_seen_at
                                         else excluded.first_seen_at end,
                    attempts = case when rejection.resolved_at is null then rejection.attempts + 1 else 1 end,
                    last_seen_at = excluded.last_seen_at, resolved_at = null, run_id = excluded.run_id,
                    run_date = excluded.run_date
            """, [(sync.object_name, outcome.key, by_key[outcome.key].values_hash,
                   Jsonb(by_key[outcome.key].record), outcome.error_code or "UNKNOWN", outcome.message or "",
                   run.run_id, run.run_date) for outcome in rejected])


def resend(warehouse_url: str, object_names: Sequence[str]) -> int:
    """Forget what the ledger knows of these objects, so the next write-back sends their rows in full.

    Returns how many ledger rows were removed. Open rejections stay (and are retried with the rest).
    """
    known = {sync.object_name for sync in SYNC_OBJECTS}
    unknown = sorted(set(object_names) - known)
    if unknown:
        raise ValueError(f"not written back: {', '.join(unknown)}; the objects are {', '.join(sorted(known))}")
    with psycopg.connect(warehouse_url, autocommit=True) as warehouse:
        ensure_schemas(warehouse)
        removed = warehouse.execute("delete from ops.sync_ledger where object_name = any(%s)",
                                    (list(object_names),)).rowcount
    log.info("ledger forgets %s row(s) of %s: the next write-back sends them in full", removed,
             ", ".join(object_names))
    return removed

