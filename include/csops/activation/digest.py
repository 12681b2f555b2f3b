"""The CS managers' daily digest in Slack, once per date: the health mix and its changes (and, on the day the
rubric changed, what the rubric moved), active signals, the latest NRR, the playbooks fired, and the firings
whose fate is unknown (for a person to check)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import date

import psycopg

from csops import settings
from csops.activation.ledger import (
    Firing,
    activation_lock,
    claim,
    day_firing,
    day_outcomes,
    ensure_ledger,
    reclaim,
    record_decisions,
    record_outcome,
    unknown_firings,
)
from csops.activation.playbooks import Senders
from csops.activation.words import say, separator, term
from csops.rubric import format_rubric_change
from csops.summary import HEALTH_STATUSES, active_signals, health_of_the_day, latest_revenue, percent

log = logging.getLogger(__name__)

DIGEST_PLAYBOOK = "daily_digest"
STATUS_ICONS = {"Red": "🔴", "Yellow": "🟡", "Green": "🟢"}


def post_digest(connection: psycopg.Connection, senders: Senders, run_date: date, *, dry_run: bool,
                run_id: str | None = None) -> str:
    """Post the day's digest once: claimed in the ledger before it is posted, its outcome recorded right after.
    Returns the outcome (`already_sent` when an earlier run posted it, `unknown` when an earlier run died
    while posting it)."""
    ensure_ledger(connection)
    firing = digest_firing(run_date)
    with activation_lock(connection, run_date, "the Slack digest"):
        if dry_run:
            record_decisions(connection, [replace(firing, outcome="dry_run",
                                                  detail="dry run: the digest was not posted")], run_id)
            return "dry_run"
        if not claim(connection, [firing], run_id):
            outcome = connection.execute("select outcome from ops.playbook_firings where firing_key = %s",
                                         (firing.firing_key,)).fetchone()[0]
            return "already_sent" if outcome == "sent" else outcome
        return send_digest(connection, senders, firing, run_id).outcome


def resend_digest(connection: psycopg.Connection, senders: Senders, run_date: date, run_id: str | None) -> Firing:
    """Post the date's digest again, on a person's word, when its fate is unknown."""
    firing = digest_firing(run_date)
    with activation_lock(connection, run_date, "the re-send"):
        if not reclaim(connection, [firing.firing_key], run_id, "sent again on request"):
            raise ValueError(f"nothing was sent: {firing.firing_key} is no longer unknown")
        return send_digest(connection, senders, firing, run_id)


def digest_firing(run_date: date) -> Firing:
    return day_firing(DIGEST_PLAYBOOK, run_date, "slack", "slack")


def send_digest(connection: psycopg.Connection, senders: Senders, firing: Firing, run_id: str | None) -> Firing:
    """Post the digest of a firing this run has claimed, and record its outcome right after."""
    try:
        senders.post_digest(digest_of(connection, firing.run_date))
        done = replace(firing, outcome="sent", detail="Slack digest")
    except Exception as error:
        log.exception("Slack digest failed")
        done = replace(firing, outcome="failed", detail=f"Slack post failed: {type(error).__name__}: {error}")
    record_outcome(connection, [done], run_id)
    return done


def digest_of(connection: psycopg.Connection, run_date: date, language: str | None = None) -> dict:
    """What the day's digest says, read from the marts and the ledger, in `language` (default
    CS_ACTIVATION_LANGUAGE)."""
    language = language or settings.activation_language()
    return {"run_date": run_date, "language": language, "health": health_of_the_day(connection, run_date),
            "signals": active_signals(connection, run_date, language),
            "revenue": latest_revenue(connection, run_date), "firings": day_outcomes(connection, run_date),
            "unknown": [row for row in unknown_firings(connection) if row["company_id"]]}


def digest_message(digest: dict) -> dict:
    """A Slack payload (`{"text": …, "blocks": […]}`) for the day's digest, in the digest's language."""
    run_date, health, signals, revenue = digest["run_date"], digest["health"], digest["signals"], digest["revenue"]
    language = digest.get("language") or settings.activation_language()
    comma = separator(language)
    lines = []
    if health:
        total = sum(health["statuses"].values())
        mix = " / ".join(f"{STATUS_ICONS[status]} {status} {health['statuses'].get(status, 0):,} "
                         f"({health['statuses'].get(status, 0) / total:.0%})" for status in HEALTH_STATUSES)
        changes = comma.join(f"{transition} {say('companies', language, n=count)}"
                             for transition, count in health["transitions"].items())
        lines += [say("digest.health", language, companies=say("companies", language, n=total), mix=mix),
                  say("digest.changes", language, changes=changes or say("none", language))]
        if health.get("rubric_change"):
            lines.append(say("digest.rubric", language, change=format_rubric_change(health["rubric_change"],
                                                                                    language)))
    else:
        lines.append(say("digest.no_scores", language, run_date=run_date))
    if signals:
        total = sum(sum(names.values()) for names in signals.values())
        kinds = "; ".join(f"{term('kind', kind, language)} "
                          f"{sum(names.values())} (" + comma.join(f"{name} {count}" for name, count in names.items())
                          + ")" for kind, names in signals.items())
        lines.append(say("digest.signals", language, total=say("signals", language, n=total), kinds=kinds))
    else:
        lines.append(say("digest.no_signals", language))
    if revenue:
        lines.append(say("digest.revenue", language, month=f"{revenue['month_start']:%Y-%m}",
                         nrr=percent(revenue["nrr"]), nrr_t12m=percent(revenue["nrr_t12m"]),
                         mrr=f"{revenue['closing_mrr']:,.0f}"))
    else:
        lines.append(say("digest.no_revenue", language))
    fired = Counter()
    for row in digest["firings"]:
        fired[row["outcome"]] += row["firings"]
    if fired:
        outcomes = comma.join(f"{term('outcome', key, language)} {say('firings', language, n=count)}"
                              for key, count in sorted(fired.items()))
        lines.append(say("digest.playbooks", language, outcomes=outcomes))
    if digest["unknown"]:
        lines.append(say("digest.unknown", language, firings=say("firings", language, n=len(digest["unknown"]))))
    if settings.dashboards_url():
        lines.append(say("digest.dashboards", language, executive=settings.dashboard_link("executive"),
                         manager=settings.dashboard_link("manager")))
    title = say("digest.title", language, run_date=run_date)
    return {"text": f"{title}: " + " | ".join(line.replace("*", "") for line in lines),
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": title}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}
