"""Playbooks: turn the day's firing candidates into CSM tasks, Opportunity drafts, e-mails and Slack lines,
once each, and record every firing in the ledger `ops.playbook_firings`.

The candidates come from the dbt model `activation.playbook_candidates` (one row per company and playbook
whose trigger holds on the run date). Here each one is checked against the ledger before anything goes out:

- **one firing per company, playbook and date**: the firing key `company|playbook|date` is the ledger's key
  (and the Salesforce Task's or Opportunity's `Playbook_Firing_Key__c`); a key already sent or created is
  never fired again, so re-running a date fires nothing new;
- **cooldown**: no second firing of a playbook for a company within `cooldown_days` of its last successful
  one (by run date, before or after: a backfill respects later firings too);
- **sequences** (the onboarding e-mails): a company gets the next step not yet sent since the trigger
  started, one step per date, no sooner than the previous step's `cooldown_days` after it;
- **recipient**: a candidate with nobody to send to is recorded `skipped_no_recipient`;
- **dry run**: everything is decided and recorded as `dry_run`; nothing is sent;
- **killswitch**: before anything is sent, the inputs are checked (every source loaded for the run date, the
  day's dbt build without failures, not more than a share of the companies firing at once); if any check
  fails, nothing is written back or fired, the firings are recorded `stopped` and the ops team is alerted.

Outcomes: sent (e-mail, Slack), created (Salesforce), dry_run, skipped_cooldown, skipped_no_recipient,
failed (the channel refused it; a re-run tries again), stopped (by the killswitch; a re-run tries again).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from csops import settings
from csops.summary import dbt_failures, dbt_results, table_exists

log = logging.getLogger(__name__)

CANDIDATES_TABLE = "activation.playbook_candidates"
LEDGER_TABLE = "ops.playbook_firings"
SUCCESS = ("sent", "created")
OUTCOMES = (*SUCCESS, "dry_run", "skipped_cooldown", "skipped_no_recipient", "failed", "stopped")
# The loads whose freshness the killswitch checks (CSV files in the inbox are a manual path, not a source).
SOURCES = ("nexpro", "salesforce", "board")
SALESFORCE_OBJECT = {"salesforce_task": "Task", "opportunity_draft": "Opportunity"}
FIRING_KEY_FIELD = "Playbook_Firing_Key__c"
# Firings of the whole day rather than of one company: the managers' digest and the killswitch's alert.
DIGEST_PLAYBOOK = "daily_digest"
ALERT_PLAYBOOK = "killswitch_alert"

LEDGER_DDL = f"""
create schema if not exists ops;
create table if not exists {LEDGER_TABLE} (
    firing_key      text primary key,
    company_id      text,
    playbook_key    text not null,
    run_date        date not null,
    action          text not null,
    outcome         text not null check (outcome in ({", ".join(f"'{outcome}'" for outcome in OUTCOMES)})),
    detail          text,
    target          text,
    airflow_run_id  text,
    attempts        integer not null default 1,
    first_at        timestamptz not null default now(),
    at              timestamptz not null default now()
);
create index if not exists playbook_firings_by_company on {LEDGER_TABLE} (company_id, playbook_key, run_date);
create index if not exists playbook_firings_by_date on {LEDGER_TABLE} (run_date);
"""


class CandidatesError(RuntimeError):
    """The candidates table is missing or was built for another date."""


@dataclass
class Firing:
    """One firing's result, as the ledger records it."""

    firing_key: str
    company_id: str | None
    playbook_key: str
    run_date: date
    action: str
    outcome: str
    detail: str | None = None
    target: str | None = None


@dataclass
class Plan:
    """What the day's candidates come to once checked against the ledger."""

    run_date: date
    to_fire: list[dict] = field(default_factory=list)
    skipped: list[Firing] = field(default_factory=list)
    already_fired: int = 0
    companies_scored: int = 0

    def companies_newly_firing(self) -> set[str]:
        """The companies a firing goes to because of something that started on the run date (a status
        entered, a status change, a signal that started that day)."""
        return {candidate["company_id"] for candidate in self.to_fire
                if candidate["trigger_started_on"] == self.run_date}


class Senders(Protocol):
    """The channels a firing goes out through: Salesforce, e-mail and Slack."""

    def upsert(self, object_name: str, records: list[dict]) -> list[tuple[bool, str]]:
        """Upsert `records` by Playbook_Firing_Key__c; per record (succeeded, the record id or the error)."""

    def send_email(self, to: str, template_key: str, context: dict) -> None:
        """Render the template for `context` and send it to `to`; raise on failure."""

    def post_status_changes(self, rows: list[dict]) -> None:
        """Post the day's status changes (one message) to the CS managers' Slack channel; raise on failure."""

    def post_digest(self, digest: dict) -> None:
        """Post the day's digest to Slack; raise on failure."""

    def post_alert(self, text: str) -> None:
        """Post an alert to Slack; raise on failure."""


def ensure_ledger(connection: psycopg.Connection) -> None:
    with connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
        connection.execute(LEDGER_DDL)


def read_candidates(connection: psycopg.Connection, run_date: date) -> list[dict]:
    """The day's candidates from activation.playbook_candidates, which must have been built for `run_date`."""
    if not table_exists(connection, CANDIDATES_TABLE):
        raise CandidatesError(f"{CANDIDATES_TABLE} does not exist: the day's cs_daily run builds it "
                              f"(dbt model playbook_candidates); run cs_daily for {run_date} first")
    built_for = [row[0] for row in connection.execute(
        f"select distinct run_date from {CANDIDATES_TABLE} order by 1").fetchall()]
    if built_for and built_for != [run_date]:
        raise CandidatesError(
            f"{CANDIDATES_TABLE} holds the candidates for {', '.join(map(str, built_for))}, not {run_date}: "
            f"run cs_daily for {run_date} first (it rebuilds the candidates), then the activation for that date")
    return connection.cursor(row_factory=dict_row).execute(
        f"select * from {CANDIDATES_TABLE} order by company_id, playbook_key").fetchall()


def successful_firings(connection: psycopg.Connection, company_ids: list[str]) -> dict[tuple[str, str], list[date]]:
    """(company, playbook) -> the run dates it was sent or created for, from the ledger."""
    fired = defaultdict(list)
    for company_id, playbook_key, run_date in connection.execute(
            f"select company_id, playbook_key, run_date from {LEDGER_TABLE} "
            f"where outcome in ('sent', 'created') and company_id = any(%s) order by run_date",
            (company_ids,)).fetchall():
        fired[(company_id, playbook_key)].append(run_date)
    return fired


def skipped(candidate: dict, outcome: str, detail: str) -> Firing:
    return Firing(candidate["firing_key"], candidate["company_id"], candidate["playbook_key"], candidate["run_date"],
                  candidate["action"], outcome, detail)


def cooldown_block(candidate: dict, fired_on: list[date], run_date: date) -> str | None:
    """Why a cooldown holds the candidate back: a successful firing of another date within cooldown_days."""
    days = candidate["cooldown_days"]
    near = [day for day in fired_on if day != run_date and abs((run_date - day).days) < days]
    if not near:
        return None
    last = max(near)
    return (f"fired on {last}; the cooldown of {days} days lets it fire again from {last + timedelta(days=days)}"
            if last < run_date else f"fired on the later date {last}, within the cooldown of {days} days")


def next_sequence_steps(candidates: list[dict], fired: dict, run_date: date) -> tuple[list[dict], list[Firing]]:
    """For each company and sequence, the one step that is due: the lowest step not sent since the trigger
    started. Returns the due steps (still to check against cooldown and recipient) and the steps held back
    because the previous one was sent less than its cooldown_days ago. Other steps are not candidates today."""
    due, held = [], []
    steps_by_sequence = defaultdict(list)
    for candidate in candidates:
        steps_by_sequence[(candidate["company_id"], candidate["sequence_key"])].append(candidate)
    for steps in steps_by_sequence.values():
        steps.sort(key=lambda step: step["sequence_step"])
        sent = {step["sequence_step"]: max(days) for step in steps
                if (days := [day for day in fired.get((step["company_id"], step["playbook_key"]), [])
                             if step["trigger_started_on"] <= day <= run_date])}
        if any(day == run_date for day in sent.values()):
            continue  # today's step went out already (a re-run)
        pending = [step for step in steps if step["sequence_step"] not in sent]
        if not pending:
            continue  # every step sent since the trigger started
        step = pending[0]
        previous = [other for other in steps if other["sequence_step"] < step["sequence_step"]
                    and other["sequence_step"] in sent]
        if previous:
            before = previous[-1]
            ready_on = sent[before["sequence_step"]] + timedelta(days=before["cooldown_days"])
            if run_date < ready_on:
                held.append(skipped(step, "skipped_cooldown",
                                    f"step {before['sequence_step']} ({before['playbook_key']}) was sent on "
                                    f"{sent[before['sequence_step']]}; step {step['sequence_step']} follows "
                                    f"from {ready_on}"))
                continue
        due.append(step)
    return due, held


def plan_firings(connection: psycopg.Connection, run_date: date) -> Plan:
    """The day's candidates checked against the ledger: what fires, what is skipped and why."""
    ensure_ledger(connection)
    candidates = read_candidates(connection, run_date)
    plan = Plan(run_date)
    if table_exists(connection, "marts.fct_health_scores"):
        plan.companies_scored = connection.execute(
            "select count(distinct company_id) from marts.fct_health_scores where score_date = %s",
            (run_date,)).fetchone()[0]
    fired = successful_firings(connection, sorted({candidate["company_id"] for candidate in candidates}))
    single = []
    for candidate in candidates:
        if run_date in fired.get((candidate["company_id"], candidate["playbook_key"]), []):
            plan.already_fired += 1
        elif not candidate["sequence_key"]:
            single.append(candidate)
    due_steps, held = next_sequence_steps([c for c in candidates if c["sequence_key"]], fired, run_date)
    plan.skipped += held
    for candidate in single + due_steps:
        block = cooldown_block(candidate, fired.get((candidate["company_id"], candidate["playbook_key"]), []),
                               run_date)
        if block:
            plan.skipped.append(skipped(candidate, "skipped_cooldown", block))
        elif candidate["missing_recipient"]:
            plan.skipped.append(skipped(candidate, "skipped_no_recipient", candidate["missing_recipient"]))
        else:
            plan.to_fire.append(candidate)
    plan.to_fire.sort(key=lambda candidate: candidate["firing_key"])
    return plan


def activation_run_date(requested: str | None, events, logical_date, run_after) -> tuple[date, str | None]:
    """The business date an activation run acts on, and the cs_daily run that built it (if known).

    A date asked for (the `run_date` param) first; else the date the cs_daily run that updated the marts
    computed (the triggering Asset events' source run: the same rule, `run_date_for` of its logical date);
    else the rule applied to this run's own logical date (or the moment it was triggered)."""
    if requested:
        return date.fromisoformat(requested), None
    for event in events:
        source = event.source_dag_run
        if source is not None:
            moment = source.logical_date or source.run_after
            return date.fromisoformat(settings.run_date_for(moment)), event.source_run_id
    return date.fromisoformat(settings.run_date_for(logical_date or run_after)), None


def business_day_end(run_date: date) -> datetime:
    """Midnight at the end of `run_date` in Tokyo: a load finished after it has the whole day."""
    return datetime.combine(run_date + timedelta(days=1), time(0), ZoneInfo(settings.BUSINESS_TIMEZONE))


def stale_sources(connection: psycopg.Connection, run_date: date) -> list[str]:
    """Tables of the sources whose last successful load finished before the run date ended (so the day's data
    is not all in), or that never loaded, from ops.extract_runs."""
    if not table_exists(connection, "ops.extract_runs"):
        return ["no load is recorded (ops.extract_runs does not exist): run cs_daily first"]
    rows = connection.execute(
        """
        select source_name, table_name, max(finished_at) filter (where status = 'succeeded') as last_loaded
        from ops.extract_runs where source_name = any(%s)
        group by source_name, table_name
        having max(finished_at) filter (where status = 'succeeded') is null
            or max(finished_at) filter (where status = 'succeeded') < %s
        order by source_name, table_name
        """, (list(SOURCES), business_day_end(run_date))).fetchall()
    tokyo = ZoneInfo(settings.BUSINESS_TIMEZONE)
    return [f"{source}.{table} " + (f"last loaded {last.astimezone(tokyo):%Y-%m-%d %H:%M} Tokyo time, before "
                                    f"{run_date} ended" if last else "never loaded successfully")
            for source, table, last in rows]


def daily_build_run_id(connection: psycopg.Connection, run_date: date) -> str | None:
    """The Airflow run of cs_daily that last built `run_date` (its dbt results in ops.dbt_node_results)."""
    if not table_exists(connection, "ops.dbt_node_results"):
        return None
    row = connection.execute(
        "select airflow_run_id from ops.dbt_node_results where run_date = %s and resource_type <> 'source' "
        "order by recorded_at desc limit 1", (run_date,)).fetchone()
    return row[0] if row else None


def killswitch_reasons(connection: psycopg.Connection, plan: Plan, max_share: float,
                       daily_run_id: str | None = None) -> list[str]:
    """Why the day's inputs look broken, or [] when they look sound.

    A source not loaded for the run date; a failed model or test in the day's dbt build (`daily_run_id`, or
    the latest build of the date); more than `max_share` of the companies scored that day firing at once
    because of something that started that day (a sudden change: a bad load turning half the customers Red).
    Standing conditions (a company Red for a month) are not sudden and do not count."""
    reasons = [f"stale source: {table}" for table in stale_sources(connection, plan.run_date)]
    run_id = daily_run_id or daily_build_run_id(connection, plan.run_date)
    if run_id is None:
        reasons.append(f"no dbt build is recorded for {plan.run_date} (ops.dbt_node_results): run cs_daily first")
    else:
        failed = dbt_failures(dbt_results(connection, run_id))
        if failed:
            reasons.append(f"{len(failed)} dbt model(s)/test(s) failed in cs_daily run {run_id}: "
                           + ", ".join(failure["what"] for failure in failed[:10])
                           + (", ..." if len(failed) > 10 else ""))
    if plan.companies_scored == 0:
        reasons.append(f"no company is scored on {plan.run_date} (marts.fct_health_scores)")
    else:
        firing = len(plan.companies_newly_firing())
        if firing / plan.companies_scored > max_share:
            reasons.append(f"mass firing: {firing} of {plan.companies_scored} companies "
                           f"({firing / plan.companies_scored:.0%}) would get a playbook at once for something "
                           f"that started on {plan.run_date}, above the limit of {max_share:.0%} "
                           f"(CS_ACTIVATION_MAX_FIRING_SHARE)")
    return reasons


def record(connection: psycopg.Connection, firings: list[Firing], run_id: str | None) -> None:
    """Write the firings to the ledger. A firing already sent or created keeps its row; any other outcome
    (a dry run, a skip, a failure, a stop) is replaced by the new one."""
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
            where {LEDGER_TABLE}.outcome not in ('sent', 'created')
            """,
            [(f.firing_key, f.company_id, f.playbook_key, f.run_date, f.action, f.outcome, f.detail, f.target,
              run_id) for f in firings])


def day_firing(playbook_key: str, run_date: date, action: str, outcome: str, detail: str | None = None,
               target: str | None = None) -> Firing:
    """A firing of the whole day (the digest, the killswitch alert): one per date."""
    return Firing(f"{playbook_key}|{run_date}", None, playbook_key, run_date, action, outcome, detail, target)


def already_sent(connection: psycopg.Connection, firing_key: str) -> bool:
    ensure_ledger(connection)
    row = connection.execute(f"select outcome from {LEDGER_TABLE} where firing_key = %s", (firing_key,)).fetchone()
    return bool(row) and row[0] in SUCCESS


def task_record(candidate: dict) -> dict:
    """The Salesforce Task a salesforce_task firing upserts: owned by the CSM, on the company's account."""
    lines = [f"{candidate['company_name']}: {candidate['trigger_detail'] or candidate['trigger_value']}",
             f"Health: {candidate['health_status']} ({candidate['total_score']})"
             + (f"; {candidate['top_reasons']}" if candidate["top_reasons"] else ""),
             f"Playbook {candidate['playbook_key']}, {candidate['run_date']} (created by the CS platform)"]
    return {FIRING_KEY_FIELD: candidate["firing_key"], "Subject": candidate["subject"],
            "WhatId": candidate["account_id"], "OwnerId": candidate["csm_user_id"],
            "ActivityDate": candidate["due_date"].isoformat(), "Priority": candidate["priority"],
            "Status": "Not Started", "Type": "Other", "Description": "\n".join(lines)}


def opportunity_record(candidate: dict) -> dict:
    """The Opportunity draft an opportunity_draft firing upserts: at Prospecting, owned by the CSM."""
    return {FIRING_KEY_FIELD: candidate["firing_key"],
            "Name": f"{candidate['company_name']} - {candidate['subject']}",
            "AccountId": candidate["account_id"], "OwnerId": candidate["csm_user_id"],
            "Type": candidate["opportunity_type"], "StageName": "Prospecting",
            "CloseDate": candidate["due_date"].isoformat(),
            "Description": f"Draft from playbook {candidate['playbook_key']} on {candidate['run_date']}: "
                           f"{candidate['trigger_detail'] or candidate['trigger_value']}"}


def email_context(candidate: dict) -> dict:
    """What an e-mail template may use; any of it may be missing (no contact name, no CSM, no reasons)."""
    return {"company_name": candidate["company_name"], "contact_name": candidate["contact_name"],
            "csm_name": candidate["csm_name"], "csm_email": candidate["csm_email"],
            "health_status": candidate["health_status"], "reasons": candidate["top_reasons"],
            "detail": candidate["trigger_detail"], "run_date": candidate["run_date"].isoformat(),
            "step": candidate["sequence_step"]}


def status_change_row(candidate: dict) -> dict:
    """A company's line in the day's Slack message of status changes."""
    return {"company_id": candidate["company_id"], "company_name": candidate["company_name"],
            "previous_health_status": candidate["previous_health_status"],
            "health_status": candidate["health_status"], "status_transition": candidate["status_transition"],
            "top_reasons": candidate["top_reasons"], "csm_name": candidate["csm_name"],
            "total_score": candidate["total_score"], "score_date": candidate["run_date"]}


def fire(candidates: list[dict], senders: Senders, dry_run: bool) -> list[Firing]:
    """Send the candidates through their channels (or, in a dry run, only say they would go)."""
    def firing(candidate: dict, outcome: str, detail: str | None = None, target: str | None = None) -> Firing:
        return Firing(candidate["firing_key"], candidate["company_id"], candidate["playbook_key"],
                      candidate["run_date"], candidate["action"], outcome, detail, target)

    if dry_run:
        return [firing(candidate, "dry_run", "dry run: nothing was sent", recipient(candidate))
                for candidate in candidates]
    firings = []
    for action, object_name in SALESFORCE_OBJECT.items():
        batch = [candidate for candidate in candidates if candidate["action"] == action]
        if not batch:
            continue
        records = [task_record(c) if action == "salesforce_task" else opportunity_record(c) for c in batch]
        try:
            results = senders.upsert(object_name, records)
        except Exception as error:  # the whole batch failed: each firing says why; a re-run tries again
            log.exception("Salesforce %s upsert failed", object_name)
            results = [(False, f"{type(error).__name__}: {error}")] * len(batch)
        for candidate, (succeeded, answer) in zip(batch, results, strict=True):
            firings.append(firing(candidate, "created", f"{object_name} {answer}", answer) if succeeded
                           else firing(candidate, "failed", f"Salesforce refused the {object_name}: {answer}"))
    for candidate in (c for c in candidates if c["action"] == "email"):
        try:
            senders.send_email(candidate["contact_email"], candidate["email_template"], email_context(candidate))
            firings.append(firing(candidate, "sent", f"e-mail {candidate['email_template']}",
                                  candidate["contact_email"]))
        except Exception as error:
            log.exception("e-mail %s to %s failed", candidate["email_template"], candidate["contact_email"])
            firings.append(firing(candidate, "failed", f"e-mail not sent: {type(error).__name__}: {error}"))
    changes = [candidate for candidate in candidates if candidate["action"] == "slack"]
    if changes:
        try:
            senders.post_status_changes([status_change_row(candidate) for candidate in changes])
            firings += [firing(candidate, "sent", f"Slack: {candidate['status_transition']}", "slack")
                        for candidate in changes]
        except Exception as error:
            log.exception("Slack status changes failed")
            firings += [firing(candidate, "failed", f"Slack post failed: {type(error).__name__}: {error}")
                        for candidate in changes]
    return firings


def recipient(candidate: dict) -> str | None:
    """Who a firing goes to: the CSM (Salesforce), the key contact (e-mail), or Slack."""
    return {"email": candidate["contact_email"], "slack": "slack"}.get(candidate["action"],
                                                                      candidate["csm_user_id"])


@dataclass
class Verdict:
    """The killswitch's answer for a date."""

    run_date: date
    reasons: list[str]
    overridden: bool = False

    @property
    def tripped(self) -> bool:
        return bool(self.reasons) and not self.overridden

    def as_dict(self) -> dict:
        return {"run_date": self.run_date.isoformat(), "reasons": self.reasons, "overridden": self.overridden,
                "tripped": self.tripped}


def check_and_stop(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                   max_share: float, run_id: str | None = None, daily_run_id: str | None = None,
                   override: bool = False) -> Verdict:
    """The killswitch: check the day's inputs. When they look broken (and no one overrode it), record every
    firing that would have gone out as `stopped` and alert the ops team (Slack and the `killswitch_alert`
    e-mail to the ops address) once per date; in a dry run, alert no one."""
    plan = plan_firings(connection, run_date)
    verdict = Verdict(run_date, killswitch_reasons(connection, plan, max_share, daily_run_id), override)
    if not verdict.reasons:
        return verdict
    if verdict.overridden:
        log.warning("killswitch overridden for %s: %s", run_date, "; ".join(verdict.reasons))
        return verdict
    detail = "stopped by the killswitch: " + "; ".join(verdict.reasons)
    record(connection, [Firing(c["firing_key"], c["company_id"], c["playbook_key"], run_date, c["action"],
                               "stopped", detail, recipient(c)) for c in plan.to_fire], run_id)
    log.error("killswitch: nothing is written back or fired for %s: %s", run_date, "; ".join(verdict.reasons))
    alert_key = f"{ALERT_PLAYBOOK}|{run_date}"
    if dry_run:
        record(connection, [day_firing(ALERT_PLAYBOOK, run_date, "slack", "dry_run", detail)], run_id)
    elif not already_sent(connection, alert_key):
        text = (f"Activation stopped for {run_date}: nothing was written back to Salesforce and no playbook fired "
                f"({len(plan.to_fire)} firing(s) held). Why: " + "; ".join(verdict.reasons))
        companies = len({candidate["company_id"] for candidate in plan.to_fire})
        alert = {"reasons": verdict.reasons, "held_firings": len(plan.to_fire), "companies": companies,
                 "run_date": run_date.isoformat()}
        problems = []
        for channel, send in (("Slack", lambda: senders.post_alert(text)),
                              ("e-mail", lambda: senders.send_email(settings.activation_ops_email(),
                                                                    ALERT_PLAYBOOK, alert))):
            try:
                send()
            except Exception as error:
                log.exception("killswitch alert by %s failed", channel)
                problems.append(f"{channel}: {type(error).__name__}: {error}")
        record(connection, [day_firing(ALERT_PLAYBOOK, run_date, "slack", "failed" if problems else "sent",
                                       "; ".join(problems) or detail, settings.activation_ops_email())], run_id)
    return verdict


def run_playbooks(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                  run_id: str | None = None) -> dict[str, int]:
    """Fire the day's playbooks and record every firing; returns the count per outcome."""
    plan = plan_firings(connection, run_date)
    firings = plan.skipped + fire(plan.to_fire, senders, dry_run)
    record(connection, firings, run_id)
    counts = defaultdict(int)
    for firing in firings:
        counts[firing.outcome] += 1
    counts["already_fired"] = plan.already_fired
    log.info("playbooks for %s: %s", run_date, dict(counts))
    return dict(counts)


def day_outcomes(connection: psycopg.Connection, run_date: date) -> list[dict]:
    """The ledger's firings of `run_date` per playbook, action and outcome (the day's own firings left out)."""
    ensure_ledger(connection)
    return connection.cursor(row_factory=dict_row).execute(
        f"""
        select playbook_key, action, outcome, count(*) as firings
        from {LEDGER_TABLE} where run_date = %s and company_id is not null
        group by playbook_key, action, outcome order by playbook_key, outcome
        """, (run_date,)).fetchall()


def post_digest(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                run_id: str | None = None) -> str:
    """The CS managers' daily digest in Slack, once per date: the health mix, the day's status changes and
    the playbooks fired. Returns the outcome recorded."""
    key = f"{DIGEST_PLAYBOOK}|{run_date}"
    if already_sent(connection, key):
        return "already_sent"
    digest = {"run_date": run_date.isoformat(), "firings": day_outcomes(connection, run_date)}
    if table_exists(connection, "marts.fct_health_scores"):
        digest["statuses"] = dict(connection.execute(
            "select health_status, count(*) from marts.fct_health_scores where score_date = %s "
            "group by health_status order by health_status", (run_date,)).fetchall())
        digest["transitions"] = dict(connection.execute(
            "select status_transition, count(*) from marts.fct_health_scores "
            "where score_date = %s and status_transition is not null group by status_transition "
            "order by count(*) desc, status_transition", (run_date,)).fetchall())
    if dry_run:
        outcome, detail = "dry_run", "dry run: the digest was not posted"
    else:
        try:
            senders.post_digest(digest)
            outcome, detail = "sent", "Slack digest"
        except Exception as error:
            log.exception("Slack digest failed")
            outcome, detail = "failed", f"Slack post failed: {type(error).__name__}: {error}"
    record(connection, [day_firing(DIGEST_PLAYBOOK, run_date, "slack", outcome, detail, "slack")], run_id)
    return outcome


class ChannelSenders:
    """The real channels: Salesforce through the platform's writer (`sf`, a logged-in simple-salesforce
    client), e-mail and Slack through Airflow's `smtp_default` and `slack_default` connections."""

    def __init__(self, sf, warehouse_url: str) -> None:
        self.sf = sf
        self.warehouse_url = warehouse_url

    def upsert(self, object_name: str, records: list[dict]) -> list[tuple[bool, str]]:
        from csops.activation.salesforce_writer import upsert

        result = upsert(self.sf, object_name, FIRING_KEY_FIELD, records)
        outcomes = {outcome.key: outcome for outcome in result.outcomes}
        answers = []
        for record in records:
            outcome = outcomes.get(record[FIRING_KEY_FIELD])
            if outcome is None:
                answers.append((False, "Salesforce gave no answer for the record"))
            elif outcome.success:
                answers.append((True, outcome.record_id or ""))
            else:
                answers.append((False, f"{outcome.error_code}: {outcome.message}"))
        return answers

    def send_email(self, to: str, template_key: str, context: dict) -> None:
        from csops.activation.channels import render_email, send_email

        send_email(to, render_email(template_key, context))

    def post_status_changes(self, rows: list[dict]) -> None:
        from csops.activation.channels import post_slack, status_change_message

        post_slack(**status_change_message(rows))

    def post_digest(self, digest: dict) -> None:
        from csops.activation.channels import daily_digest_message, post_slack

        message = daily_digest_message(self.warehouse_url, date.fromisoformat(digest["run_date"]))
        fired = defaultdict(int)
        for row in digest["firings"]:
            fired[row["outcome"]] += row["firings"]
        if fired:
            line = "*プレイブック*: " + ", ".join(f"{outcome} {count}" for outcome, count in sorted(fired.items()))
            message["blocks"] = [*message.get("blocks", []),
                                 {"type": "section", "text": {"type": "mrkdwn", "text": line}}]
        post_slack(**message)

    def post_alert(self, text: str) -> None:
        from csops.activation.channels import post_slack

        post_slack(text)
