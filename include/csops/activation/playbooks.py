"""Playbooks: turn the day's firing candidates into CSM tasks, Opportunity drafts, e-mails and Slack lines,
at most once each, and record every firing in the ledger `ops.playbook_firings` (csops.activation.ledger).

The candidates come from the dbt model `activation.playbook_candidates` (one row per company and playbook
whose trigger holds on the run date). Each one is checked against the ledger before anything goes out:

- **one firing per company, playbook and date**: the firing key `company|playbook|date` is the ledger's key
  (and the Salesforce Task's or Opportunity's `Playbook_Firing_Key__c`);
- **claimed before it acts**: a firing is sent only by the run that claimed it, and its outcome is recorded
  right after its own send; a firing whose process died is `unknown` and never sent again by itself (a
  Salesforce record is looked up by its firing key instead; an e-mail or Slack line waits for a person);
- **cooldown**: no second firing of a playbook for a company within `cooldown_days` of one that may have
  reached someone (sent, created, or unknown), by run date, before or after;
- **sequences** (the onboarding e-mails): a company gets the next step not yet sent since the trigger
  started, one step per date, no sooner than the previous step's `cooldown_days` after it;
- **recipient**: a candidate with nobody to send to is recorded `skipped_no_recipient`;
- **dry run**: everything is decided and recorded as `dry_run`; nothing is sent.

Whether the date may fire at all is the killswitch's decision (csops.activation.killswitch).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Protocol

import psycopg
from psycopg.rows import dict_row

from csops import settings
from csops.activation.ledger import (
    Firing,
    activation_lock,
    claim,
    ensure_ledger,
    mark_unknown,
    maybe_fired,
    reclaim,
    record_decisions,
    record_outcome,
    unknown_firings,
)
from csops.summary import table_exists

log = logging.getLogger(__name__)

CANDIDATES_TABLE = "activation.playbook_candidates"
SALESFORCE_OBJECT = {"salesforce_task": "Task", "opportunity_draft": "Opportunity"}
FIRING_KEY_FIELD = "Playbook_Firing_Key__c"


class CandidatesError(RuntimeError):
    """The candidates table is missing or was built for another date."""


@dataclass
class Plan:
    """What the day's candidates come to once checked against the ledger."""

    run_date: date
    to_fire: list[dict] = field(default_factory=list)
    skipped: list[Firing] = field(default_factory=list)
    already_fired: int = 0
    companies_scored: int = 0

    def companies_firing(self) -> set[str]:
        """The companies something would go to on the run date, standing conditions included."""
        return {candidate["company_id"] for candidate in self.to_fire if candidate["company_id"]}


class Senders(Protocol):
    """The channels a firing goes out through: Salesforce, e-mail and Slack."""

    def upsert(self, object_name: str, records: list[dict]) -> dict[str, tuple[bool, str]]:
        """Upsert `records` by Playbook_Firing_Key__c. Per firing key Salesforce answered: (succeeded, the
        record id or the error). A record missing from the answer may or may not have been written."""

    def find(self, object_name: str, firing_keys: list[str]) -> dict[str, str]:
        """The records of `object_name` carrying these firing keys (deleted ones too): firing key -> Id."""

    def send_email(self, to: str, template_key: str, context: dict, reply_to: str | None = None) -> None:
        """Render the template for `context` and send it to `to`; raise on failure."""

    def post_status_changes(self, rows: list[dict]) -> None:
        """Post the day's status changes (one message) to the CS managers' Slack channel; raise on failure."""

    def post_digest(self, digest: dict) -> None:
        """Post the day's digest to Slack; raise on failure."""

    def post_alert(self, text: str) -> None:
        """Post an alert to Slack; raise on failure."""


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
    fired = maybe_fired(connection, sorted({candidate["company_id"] for candidate in candidates}))
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


def task_record(candidate: dict) -> dict:
    """The Salesforce Task a salesforce_task firing upserts: owned by the CSM, on the company's account."""
    lines = [f"{candidate['company_name']}: {candidate['trigger_detail'] or candidate['trigger_value']}",
             f"Health: {candidate['health_status']} ({candidate['total_score']})"
             + (f"; {candidate['top_reasons']}" if candidate["top_reasons"] else ""),
             f"Playbook {candidate['playbook_key']}, {candidate['run_date']} (created by the CS platform)"]
    if link := settings.dashboard_link("customer", company=candidate["company_id"]):
        lines.append(f"Customer 360: {link}")
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
            "top_reasons": candidate["top_reasons"], "top_reasons_ja": candidate.get("top_reasons_ja"),
            "csm_name": candidate["csm_name"],
            "total_score": candidate["total_score"], "score_date": candidate["run_date"]}


def recipient(candidate: dict) -> str | None:
    """Who a firing goes to: the CSM (Salesforce), the key contact (e-mail), or Slack."""
    return {"email": candidate["contact_email"], "slack": "slack"}.get(candidate["action"],
                                                                      candidate["csm_user_id"])




def firing_of(candidate: dict, outcome: str = "claimed", detail: str | None = None) -> Firing:
    return Firing(candidate["firing_key"], candidate["company_id"], candidate["playbook_key"], candidate["run_date"],
                  candidate["action"], outcome, detail, recipient(candidate))


def settle_unknown(connection: psycopg.Connection, senders: Senders, run_date: date, run_id: str | None) -> int:
    """Before the date fires again: firings a dead process left `claimed` become `unknown`; an unknown
    Salesforce record is looked up by its firing key (found: `created`; absent: claimed by this run, so that it
    is sent). Returns how many e-mails and Slack lines stay unknown, for a person to decide."""
    died = mark_unknown(connection, run_date)
    if died:
        log.warning("%d firing(s) of %s were claimed by a process that stopped before recording an outcome: "
                    "now unknown", died, run_date)
    unknown = unknown_firings(connection, run_date)
    for action, object_name in SALESFORCE_OBJECT.items():
        keys = [row["firing_key"] for row in unknown if row["action"] == action]
        if not keys:
            continue
        found = senders.find(object_name, keys)
        record_outcome(connection, [Firing(key, None, "", run_date, action, "created",
                                           f"{object_name} {found[key]} (found by its firing key after a lost "
                                           f"answer)", found[key])
                                    for key in reclaim(connection, sorted(found), run_id, "looking up")], run_id)
        absent = [key for key in keys if key not in found]
        record_outcome(connection, [Firing(key, None, "", run_date, action, "failed",
                                           f"no {object_name} carries this firing key after a lost answer: "
                                           f"it is sent again") for key in reclaim(connection, absent, run_id,
                                                                                    "looking up")], run_id)
    return sum(row["action"] not in SALESFORCE_OBJECT for row in unknown_firings(connection, run_date))


def fire(connection: psycopg.Connection, senders: Senders, candidates: list[dict], run_id: str | None, *,
         claimed: bool = False) -> list[Firing]:
    """Send each candidate through its channel: claimed in the ledger right before its own send (a Salesforce
    batch, one e-mail, the day's Slack post), its outcome recorded right after. A candidate another run holds
    (claimed, sent, created, unknown) is left alone. `claimed`: this run holds the claims already."""
    firings = []

    def owned(group: list[dict]) -> list[dict]:
        if claimed:
            return group
        keys = claim(connection, [firing_of(candidate) for candidate in group], run_id)
        return [candidate for candidate in group if candidate["firing_key"] in keys]

    def done(candidate_firings: list[Firing]) -> None:
        record_outcome(connection, candidate_firings, run_id)
        firings.extend(candidate_firings)

    for action, object_name in SALESFORCE_OBJECT.items():
        if batch := owned([candidate for candidate in candidates if candidate["action"] == action]):
            done(upsert_firings(senders, object_name, batch))
    for candidate in (c for c in candidates if c["action"] == "email"):
        if not owned([candidate]):
            continue
        try:
            senders.send_email(candidate["contact_email"], candidate["email_template"], email_context(candidate),
                               reply_to=candidate["csm_email"])
            done([firing_of(candidate, "sent", f"e-mail {candidate['email_template']}")])
        except Exception as error:
            log.exception("e-mail %s to %s failed", candidate["email_template"], candidate["contact_email"])
            done([firing_of(candidate, "failed", f"e-mail not sent: {type(error).__name__}: {error}")])
    if changes := owned([candidate for candidate in candidates if candidate["action"] == "slack"]):
        try:
            senders.post_status_changes([status_change_row(candidate) for candidate in changes])
            done([firing_of(candidate, "sent", f"Slack: {candidate['status_transition']}") for candidate in changes])
        except Exception as error:
            log.exception("Slack status changes failed")
            done([firing_of(candidate, "failed", f"Slack post failed: {type(error).__name__}: {error}")
                  for candidate in changes])
    return firings


def resend_unknown(connection: psycopg.Connection, senders: Senders, run_date: date, firing_keys: list[str],
                   run_id: str | None = None) -> list[Firing]:
    """Send again company e-mails and Slack lines of `run_date` whose fate is unknown (csops.activation.day's
    `resend` checked the keys). Each must still be a candidate of the date the candidates table was built for;
    otherwise nothing is sent."""
    candidates = {c["firing_key"]: c for c in read_candidates(connection, run_date)}
    missing = [key for key in firing_keys if key not in candidates]
    if missing:
        raise ValueError(f"nothing was sent: {', '.join(missing)} no longer qualif(ies) on {run_date} "
                         f"({CANDIDATES_TABLE}); nothing to send again")
    with activation_lock(connection, run_date, "the re-send"):
        owned = reclaim(connection, firing_keys, run_id, "sent again on request")
        return fire(connection, senders, [candidates[key] for key in firing_keys if key in owned], run_id,
                    claimed=True)


def upsert_firings(senders: Senders, object_name: str, batch: list[dict]) -> list[Firing]:
    """Upsert a batch of Tasks or Opportunity drafts; each firing's outcome from Salesforce's own answer for its
    record: created, failed (refused, with the error), or unknown (no answer came back for it)."""
    records = [task_record(c) if object_name == "Task" else opportunity_record(c) for c in batch]
    try:
        answers = senders.upsert(object_name, records)
        lost = "Salesforce gave no answer for the record"
    except Exception as error:  # no answer at all: whether any record was written is unknown
        log.exception("Salesforce %s upsert failed", object_name)
        answers, lost = {}, f"the call ended without an answer for the record ({type(error).__name__}: {error})"
    firings = []
    for candidate in batch:
        answer = answers.get(candidate["firing_key"])
        if answer is None:
            firings.append(firing_of(candidate, "unknown", f"{lost}: looked up by its firing key next run"))
        elif answer[0]:
            firings.append(replace(firing_of(candidate, "created", f"{object_name} {answer[1]}"), target=answer[1]))
        else:
            firings.append(firing_of(candidate, "failed", f"Salesforce refused the {object_name}: {answer[1]}"))
    return firings


def run_playbooks(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                  run_id: str | None = None) -> dict[str, int]:
    """Fire the day's playbooks, one activation of the date at a time, and record every firing; returns the
    count per outcome (`already_fired`: fired for the date before; `unknown`: the date's firings waiting for
    a person)."""
    ensure_ledger(connection)
    with activation_lock(connection, run_date, "playbooks"):
        settle_unknown(connection, senders, run_date, run_id)
        plan = plan_firings(connection, run_date)
        if dry_run:
            firings = plan.skipped + [firing_of(candidate, "dry_run", "dry run: nothing was sent")
                                      for candidate in plan.to_fire]
            record_decisions(connection, firings, run_id)
        else:
            record_decisions(connection, plan.skipped, run_id)
            firings = plan.skipped + fire(connection, senders, plan.to_fire, run_id)
    counts = Counter(firing.outcome for firing in firings)
    counts["already_fired"] = plan.already_fired
    unknown = sum(row["company_id"] is not None for row in unknown_firings(connection, run_date))
    if unknown:
        counts["unknown"] = unknown
    log.info("playbooks for %s: %s", run_date, dict(counts))
    return dict(counts)
