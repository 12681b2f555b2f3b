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

import json
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
    reclaim,
    record_decisions,
    record_outcome,
)
from csops.activation.playbooks import Plan, Senders, plan_firings, recipient
from csops.activation.words import say
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
-- the reasons as phrases and values, so that an alert can be written again in any language
alter table {VERDICTS_TABLE} add column if not exists reason_phrases jsonb;
create index if not exists killswitch_verdicts_by_date on {VERDICTS_TABLE} (run_date, decided_at);
"""


@dataclass(frozen=True)
class Reason:
    """Why the killswitch holds a date: a phrase of csops.activation.words (`reason.<key>`) and its values,
    read in any language; `str()` is the English the ops tables and the logs keep."""

    key: str
    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, key: str, **values) -> Reason:
        return cls(key, tuple(values.items()))

    def text(self, language: str | None = None) -> str:
        return say(f"reason.{self.key}", language, **dict(self.values))

    def __str__(self) -> str:
        return self.text("en")


@dataclass
class Verdict:
    """The killswitch's decision for a date, with what it found."""

    run_date: date
    decision: str
    reasons: list[Reason] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    overridden_by: str | None = None

    @property
    def fires(self) -> bool:
        return self.decision in FIRES

    @property
    def tripped(self) -> bool:
        return not self.fires

    def reason_texts(self, language: str | None = None) -> list[str]:
        return [reason.text(language) for reason in self.reasons]

    def why(self, language: str = "en") -> str:
        return ("；" if language == "ja" else "; ").join(self.reason_texts(language))

    def as_dict(self) -> dict:
        return {"run_date": self.run_date.isoformat(), "decision": self.decision, "reasons": self.reason_texts("en"),
                "inputs": self.inputs, "overridden": self.decision == "overridden",
                "overridden_by": self.overridden_by, "tripped": self.tripped}


def ensure_verdicts(connection: psycopg.Connection) -> None:
    with connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
        connection.execute(VERDICTS_DDL)


def business_day_end(run_date: date) -> datetime:
    """Midnight at the end of `run_date` in Tokyo: a load finished after it has the whole day."""
    return datetime.combine(run_date + timedelta(days=1), time(0), ZoneInfo(settings.BUSINESS_TIMEZONE))


def stale_sources(connection: psycopg.Connection, run_date: date) -> list[Reason]:
    """Tables of the sources whose last successful load finished before the run date ended (so the day's data
    is not all in), or that never loaded, from ops.extract_runs."""
    if not table_exists(connection, "ops.extract_runs"):
        return [Reason.of("no_extract_runs")]
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
    return [Reason.of("stale_source", table=f"{source}.{table}", run_date=run_date,
                      last_loaded=f"{last.astimezone(tokyo):%Y-%m-%d %H:%M}") if last
            else Reason.of("never_loaded", table=f"{source}.{table}") for source, table, last in rows]


def daily_build_run_id(connection: psycopg.Connection, run_date: date) -> str | None:
    """The Airflow run of cs_daily that last built `run_date` (its dbt results in ops.dbt_node_results)."""
    if not table_exists(connection, "ops.dbt_node_results"):
        return None
    row = connection.execute(
        "select airflow_run_id from ops.dbt_node_results where run_date = %s and resource_type <> 'source' "
        "order by recorded_at desc limit 1", (run_date,)).fetchone()
    return row[0] if row else None


def check_inputs(connection: psycopg.Connection, plan: Plan, max_share: float,
                 daily_run_id: str | None = None) -> tuple[list[Reason], dict]:
    """Why the day's inputs look broken ([] when they look sound), and the figures the checks read.

    The share of companies firing is not checked on the first activation of a warehouse: with no firing in
    the ledger yet, every standing condition fires at once, and there is nothing normal to compare with."""
    reasons = stale_sources(connection, plan.run_date)
    stale = [str(reason) for reason in reasons]
    run_id = daily_run_id or daily_build_run_id(connection, plan.run_date)
    failed = []
    if run_id is None:
        reasons.append(Reason.of("no_dbt_build", run_date=plan.run_date))
    else:
        failed = [failure["what"] for failure in dbt_failures(dbt_results(connection, run_id))]
        if failed:
            reasons.append(Reason.of("dbt_failed", n=len(failed), run_id=run_id,
                                     nodes=", ".join(failed[:10]) + (", ..." if len(failed) > 10 else "")))
    firing = len(plan.companies_firing())
    share = firing / plan.companies_scored if plan.companies_scored else None
    first = not has_fired_before(connection, plan.run_date)
    if not plan.companies_scored:
        reasons.append(Reason.of("no_scores", run_date=plan.run_date))
    elif share > max_share and not first:
        reasons.append(Reason.of("mass_firing", firing=firing, scored=plan.companies_scored, share=f"{share:.0%}",
                                 run_date=plan.run_date, limit=f"{max_share:.0%}"))
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
        why = (Reason.of("backfill_run") if backfill
               else Reason.of("past_date", run_date=plan.run_date, latest=latest))
        return Verdict(plan.run_date, "backfill", [why],
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
        f"insert into {VERDICTS_TABLE} (run_date, decision, reasons, reason_phrases, inputs, overridden_by, "
        f"airflow_run_id) values (%s, %s, %s, %s, %s, %s, %s)",
        (verdict.run_date, verdict.decision, Jsonb(verdict.reason_texts("en")),
         Jsonb([{"key": reason.key, "values": dict(reason.values)} for reason in verdict.reasons],
               dumps=lambda value: json.dumps(value, default=str)),
         Jsonb(verdict.inputs), verdict.overridden_by, run_id))


def stored_verdict(connection: psycopg.Connection, run_date: date) -> Verdict | None:
    """The latest verdict kept for `run_date`, as it was decided."""
    ensure_verdicts(connection)
    row = connection.cursor(row_factory=dict_row).execute(
        f"select decision, reasons, reason_phrases, inputs, overridden_by from {VERDICTS_TABLE} "
        f"where run_date = %s order by decided_at desc, verdict_id desc limit 1", (run_date,)).fetchone()
    if row is None:
        return None
    reasons = [Reason.of(phrase["key"], **phrase["values"]) for phrase in row["reason_phrases"] or []]
    return Verdict(run_date, row["decision"], reasons, row["inputs"], row["overridden_by"])


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
        log.warning("killswitch overridden for %s by %s: %s", run_date, override_by, verdict.why())
    if verdict.fires:
        return verdict
    outcome = "skipped_backfill" if verdict.decision == "backfill" else "stopped"
    detail = ("" if outcome == "skipped_backfill" else "stopped by the killswitch: ") + verdict.why()
    record_decisions(connection, [Firing(c["firing_key"], c["company_id"], c["playbook_key"], run_date, c["action"],
                                         outcome, detail, recipient(c)) for c in plan.to_fire], run_id)
    log.error("killswitch (%s): nothing is written back or fired for %s: %s", verdict.decision, run_date,
              verdict.why())
    if verdict.decision in ("tripped", "still_tripped"):
        alert_ops(connection, senders, plan, verdict, dry_run=dry_run, run_id=run_id)
    return verdict


def alert_firings(run_date: date) -> tuple[Firing, Firing]:
    """The killswitch's two firings of a date: its Slack post and its e-mail."""
    return (day_firing(f"{ALERT_PLAYBOOK}_slack", run_date, "slack", "slack"),
            day_firing(ALERT_PLAYBOOK, run_date, "email", settings.activation_ops_email()))


def alert_ops(connection: psycopg.Connection, senders: Senders, plan: Plan, verdict: Verdict, *, dry_run: bool,
              run_id: str | None) -> None:
    """Tell the ops team, once per tripped date and channel: a Slack post and the `killswitch_alert` e-mail,
    each its own firing (so one that failed is tried again without repeating the other)."""
    slack, email = alert_firings(plan.run_date)
    if dry_run:
        record_decisions(connection, [replace(slack, outcome="dry_run", detail="dry run: the alert was not posted"),
                                      replace(email, outcome="dry_run", detail="dry run: the alert was not sent")],
                         run_id)
        return
    send_alerts(connection, senders, verdict, claim(connection, [slack, email], run_id), run_id)


def send_alerts(connection: psycopg.Connection, senders: Senders, verdict: Verdict, owned: set[str],
                run_id: str | None) -> list[Firing]:
    """Send those of the date's alert firings this run holds (`owned`), in CS_ACTIVATION_LANGUAGE, each
    outcome recorded right after its send."""
    language = settings.activation_language()
    held, companies = verdict.inputs.get("firings", 0), verdict.inputs.get("companies_firing", 0)
    text = say("alert.slack", language, run_date=verdict.run_date, firings=say("firings", language, n=held),
               companies=say("companies", language, n=companies), reasons=verdict.why(language))
    alert = {"reasons": verdict.reason_texts(language), "held_firings": held, "companies": companies,
             "run_date": verdict.run_date.isoformat()}
    slack, email = alert_firings(verdict.run_date)
    done_firings = []
    for firing, send in ((slack, lambda: senders.post_alert(text)),
                         (email, lambda: senders.send_email(settings.activation_ops_email(), ALERT_PLAYBOOK, alert))):
        if firing.firing_key not in owned:
            continue
        try:
            send()
            done = replace(firing, outcome="sent", detail="killswitch alert: " + verdict.why())
        except Exception as error:
            log.exception("killswitch alert by %s failed", firing.action)
            done = replace(firing, outcome="failed", detail=f"{type(error).__name__}: {error}")
        record_outcome(connection, [done], run_id)
        done_firings.append(done)
    return done_firings


def resend_alerts(connection: psycopg.Connection, senders: Senders, run_date: date, firing_keys: list[str],
                  run_id: str | None) -> list[Firing]:
    """Send again, on a person's word, the date's alert firings of unknown fate, from the verdict as kept."""
    verdict = stored_verdict(connection, run_date)
    if verdict is None or verdict.decision not in ("tripped", "still_tripped"):
        raise ValueError(f"nothing was sent: no tripped verdict is kept for {run_date} ({VERDICTS_TABLE})")
    with activation_lock(connection, run_date, "the re-send"):
        return send_alerts(connection, senders, verdict, reclaim(connection, firing_keys, run_id,
                                                                 "sent again on request"), run_id)
