"""The killswitch: before anything leaves the platform for a date, decide whether the day's inputs can be
trusted and whether the date may fire at all. Every decision is kept in `ops.killswitch_verdicts`.

The decisions:

- `passed` — every source table loaded after the run date ended (`ops.extract_runs`), the day's dbt build
  without a failed model or test (`ops.dbt_node_results`), and not more than `max_share` of the scored
  companies would get a playbook on the date. Every company that would fire counts, standing conditions
  included: a bad load that keeps most customers Red keeps tripping, day after day, until it is fixed. (On
  the first activation of a warehouse every standing condition fires at once; the share is not checked
  then, the other checks are.)
- `tripped` — a check failed: every firing is recorded `stopped`, nothing is written back, and the ops team
  is alerted (Slack and the `killswitch_alert` e-mail), once per date.
- `still_tripped` — the same, on a date after a tripped one whose inputs still fail (no new alert).
- `recovered` — the last decided date was tripped, and now every check passes: it fires again.
- `overridden` — a person checked the inputs and triggered with `override_killswitch`: it fires; the
  verdict keeps what the checks found and who overrode them.
- `backfill` — a date older than the latest date already activated, or started by a backfill of cs_daily:
  the past never fires. Every firing is recorded `skipped_backfill`; nothing is written back or sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from csops import settings
from csops.activation.ledger import (
    Firing,
    activation_lock,
    claim,
    day_firing,
    ensure_ledger,
    record_decisions,
    record_outcome,
)
from csops.activation.playbooks import Plan, Senders, plan_firings, recipient
from csops.summary import dbt_failures, dbt_results, table_exists

log = logging.getLogger(__name__)

VERDICTS_TABLE = "ops.killswitch_verdicts"
ALERT_PLAYBOOK = "killswitch_alert"
# The loads whose freshness the killswitch checks (CSV files in the inbox are a manual path, not a source).
SOURCES = ("nexpro", "salesforce", "board")
# Decisions under which the activation fires; any other holds it.
FIRES = ("passed", "recovered", "overridden")

VERDICTS_DDL = f"""
create schema if not exists ops;
create table if not exists {VERDICTS_TABLE} (
    verdict_id      bigint generated always as identity primary key,
    run_date        date not null,
    decision        text not null check (decision in
                        ('passed', 'tripped', 'still_tripped', 'recovered', 'overridden', 'backfill')),
    reasons         jsonb not null,
    inputs          jsonb not null,
    overridden_by   text,
    airflow_run_id  text,
    decided_at      timestamptz not null default now()
);
create index if not exists killswitch_verdicts_by_date on {VERDICTS_TABLE} (run_date, decided_at);
"""


@dataclass
class Verdict:
    """The killswitch's decision for a date, with what it found."""

    run_date: date
    decision: str
    reasons: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    overridden_by: str | None = None

    @property
    def fires(self) -> bool:
        return self.decision in FIRES

    @property
    def tripped(self) -> bool:
        return not self.fires

    def as_dict(self) -> dict:
        return {"run_date": self.run_date.isoformat(), "decision": self.decision, "reasons": self.reasons,
                "inputs": self.inputs, "overridden": self.decision == "overridden",
                "overridden_by": self.overridden_by, "tripped": self.tripped}


def ensure_verdicts(connection: psycopg.Connection) -> None:
    with connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
        connection.execute(VERDICTS_DDL)


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


def check_inputs(connection: psycopg.Connection, plan: Plan, max_share: float,
                 daily_run_id: str | None = None) -> tuple[list[str], dict]:
    """Why the day's inputs look broken ([] when they look sound), and the figures the checks read.

    The share of companies firing is not checked on the first activation of a warehouse: with no firing in
    the ledger yet, every standing condition fires at once, and there is nothing normal to compare with."""
    stale = stale_sources(connection, plan.run_date)
    reasons = [f"stale source: {table}" for table in stale]
    run_id = daily_run_id or daily_build_run_id(connection, plan.run_date)
    failed = []
    if run_id is None:
        reasons.append(f"no dbt build is recorded for {plan.run_date} (ops.dbt_node_results): run cs_daily first")
    else:
        failed = [failure["what"] for failure in dbt_failures(dbt_results(connection, run_id))]
        if failed:
            reasons.append(f"{len(failed)} dbt model(s)/test(s) failed in cs_daily run {run_id}: "
                           + ", ".join(failed[:10]) + (", ..." if len(failed) > 10 else ""))
    firing = len(plan.companies_firing())
    share = firing / plan.companies_scored if plan.companies_scored else None
    first = not has_fired_before(connection, plan.run_date)
    if not plan.companies_scored:
        reasons.append(f"no company is scored on {plan.run_date} (marts.fct_health_scores)")
    elif share > max_share and not first:
        reasons.append(f"mass firing: {firing} of {plan.companies_scored} companies ({share:.0%}) would get a "
                       f"playbook on {plan.run_date}, above the limit of {max_share:.0%} "
                       f"(CS_ACTIVATION_MAX_FIRING_SHARE)")
    inputs = {"stale_sources": stale, "dbt_build_run_id": run_id, "failed_dbt_nodes": failed,
              "companies_scored": plan.companies_scored, "companies_firing": firing,
              "firing_share": round(share, 4) if share is not None else None, "max_share": max_share,
              "firings": len(plan.to_fire), "first_activation": first}
    return reasons, inputs


def has_fired_before(connection: psycopg.Connection, run_date: date) -> bool:
    """Whether an earlier date was let fire (passed, recovered or overridden)."""
    ensure_verdicts(connection)
    return connection.execute(
        f"select exists (select from {VERDICTS_TABLE} where run_date < %s and decision = any(%s))",
        (run_date, list(FIRES))).fetchone()[0]


def previous_verdict(connection: psycopg.Connection, run_date: date) -> dict | None:
    """The last decision for an earlier date (backfills left out)."""
    ensure_verdicts(connection)
    return connection.cursor(row_factory=dict_row).execute(
        f"select run_date, decision, reasons from {VERDICTS_TABLE} where run_date < %s and decision <> 'backfill' "
        f"order by run_date desc, decided_at desc limit 1", (run_date,)).fetchone()


def latest_activated_date(connection: psycopg.Connection) -> date | None:
    """The latest date the activation decided on (backfills left out): the activation's present."""
    ensure_verdicts(connection)
    return connection.execute(
        f"select max(run_date) from {VERDICTS_TABLE} where decision <> 'backfill'").fetchone()[0]


def decide(connection: psycopg.Connection, plan: Plan, max_share: float, *, daily_run_id: str | None = None,
           override_by: str | None = None, backfill: bool = False) -> Verdict:
    """The verdict for `plan.run_date` (not yet stored)."""
    latest = latest_activated_date(connection)
    if backfill or (latest is not None and plan.run_date < latest):
        why = ("started by a backfill of cs_daily" if backfill
               else f"{plan.run_date} is older than {latest}, the latest date already activated")
        return Verdict(plan.run_date, "backfill",
                       [f"the past does not fire: {why}; nothing is written back or sent for it"],
                       {"latest_activated_date": latest.isoformat() if latest else None, "backfill_run": backfill})
    reasons, inputs = check_inputs(connection, plan, max_share, daily_run_id)
    before = previous_verdict(connection, plan.run_date)
    held_before = before is not None and before["decision"] in ("tripped", "still_tripped")
    if held_before:
        inputs["previous"] = {"run_date": before["run_date"].isoformat(), "decision": before["decision"]}
    if reasons and override_by:
        return Verdict(plan.run_date, "overridden", reasons, inputs, override_by)
    if reasons:
        return Verdict(plan.run_date, "still_tripped" if held_before else "tripped", reasons, inputs)
    return Verdict(plan.run_date, "recovered" if held_before else "passed", [], inputs)


def store(connection: psycopg.Connection, verdict: Verdict, run_id: str | None) -> None:
    ensure_verdicts(connection)
    connection.execute(
        f"insert into {VERDICTS_TABLE} (run_date, decision, reasons, inputs, overridden_by, airflow_run_id) "
        f"values (%s, %s, %s, %s, %s, %s)",
        (verdict.run_date, verdict.decision, Jsonb(verdict.reasons), Jsonb(verdict.inputs), verdict.overridden_by,
         run_id))


def check_and_stop(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                   max_share: float, run_id: str | None = None, daily_run_id: str | None = None,
                   override_by: str | None = None, backfill: bool = False) -> Verdict:
    """Decide for `run_date`, keep the verdict, and act on a hold: every firing that would have gone out is
    recorded `stopped` (or `skipped_backfill`), and a trip alerts the ops team once per date (not in a dry run,
    not for a backfill). `override_by` names who overrode the killswitch (None: no override)."""
    ensure_ledger(connection)
    with activation_lock(connection, run_date, "the killswitch"):
        return decide_and_act(connection, senders, run_date, dry_run=dry_run, max_share=max_share, run_id=run_id,
                              daily_run_id=daily_run_id, override_by=override_by, backfill=backfill)


def decide_and_act(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                   max_share: float, run_id: str | None, daily_run_id: str | None, override_by: str | None,
                   backfill: bool) -> Verdict:
    plan = plan_firings(connection, run_date)
    verdict = decide(connection, plan, max_share, daily_run_id=daily_run_id, override_by=override_by,
                     backfill=backfill)
    store(connection, verdict, run_id)
    if verdict.decision == "overridden":
        log.warning("killswitch overridden for %s by %s: %s", run_date, override_by, "; ".join(verdict.reasons))
    if verdict.fires:
        return verdict
    outcome = "skipped_backfill" if verdict.decision == "backfill" else "stopped"
    detail = ("" if outcome == "skipped_backfill" else "stopped by the killswitch: ") + "; ".join(verdict.reasons)
    record_decisions(connection, [Firing(c["firing_key"], c["company_id"], c["playbook_key"], run_date, c["action"],
                                         outcome, detail, recipient(c)) for c in plan.to_fire], run_id)
    log.error("killswitch (%s): nothing is written back or fired for %s: %s", verdict.decision, run_date,
              "; ".join(verdict.reasons))
    if verdict.decision in ("tripped", "still_tripped"):
        alert_ops(connection, senders, plan, verdict, dry_run=dry_run, run_id=run_id)
    return verdict


def alert_ops(connection: psycopg.Connection, senders: Senders, plan: Plan, verdict: Verdict, *, dry_run: bool,
              run_id: str | None) -> None:
    """Tell the ops team, once per tripped date and channel: a Slack post and the `killswitch_alert` e-mail,
    each its own firing (so one that failed is tried again without repeating the other)."""
    companies = len(plan.companies_firing())
    slack = day_firing(f"{ALERT_PLAYBOOK}_slack", plan.run_date, "slack", "slack")
    email = day_firing(ALERT_PLAYBOOK, plan.run_date, "email", settings.activation_ops_email())
    if dry_run:
        record_decisions(connection, [replace(slack, outcome="dry_run", detail="dry run: the alert was not posted"),
                                      replace(email, outcome="dry_run", detail="dry run: the alert was not sent")],
                         run_id)
        return
    text = (f"Activation stopped for {plan.run_date}: nothing was written back to Salesforce and no playbook "
            f"fired ({len(plan.to_fire)} firing(s) held, {companies} compan{'y' if companies == 1 else 'ies'}). "
            f"Why: " + "; ".join(verdict.reasons))
    alert = {"reasons": verdict.reasons, "held_firings": len(plan.to_fire), "companies": companies,
             "run_date": plan.run_date.isoformat()}
    owned = claim(connection, [slack, email], run_id)
    for firing, send in ((slack, lambda: senders.post_alert(text)),
                         (email, lambda: senders.send_email(settings.activation_ops_email(), ALERT_PLAYBOOK, alert))):
        if firing.firing_key not in owned:
            continue
        try:
            send()
            done = replace(firing, outcome="sent", detail="killswitch alert: " + "; ".join(verdict.reasons))
        except Exception as error:
            log.exception("killswitch alert by %s failed", firing.action)
            done = replace(firing, outcome="failed", detail=f"{type(error).__name__}: {error}")
        record_outcome(connection, [done], run_id)
