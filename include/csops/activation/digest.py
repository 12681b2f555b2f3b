"""The CS managers' daily digest in Slack, once per date: the health mix and its changes (and, on the day the
rubric changed, what the rubric moved), active signals, the latest NRR, the playbooks fired, and the firings
whose fate is unknown (for a person to check)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import date

import psycopg

from csops.activation.ledger import (
    activation_lock,
    claim,
    day_firing,
    day_outcomes,
    ensure_ledger,
    record_decisions,
    record_outcome,
    unknown_firings,
)
from csops.activation.playbooks import Senders
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
    firing = day_firing(DIGEST_PLAYBOOK, run_date, "slack", "slack")
    with activation_lock(connection, run_date, "the Slack digest"):
        if dry_run:
            record_decisions(connection, [replace(firing, outcome="dry_run",
                                                  detail="dry run: the digest was not posted")], run_id)
            return "dry_run"
        if not claim(connection, [firing], run_id):
            outcome = connection.execute("select outcome from ops.playbook_firings where firing_key = %s",
                                         (firing.firing_key,)).fetchone()[0]
            return "already_sent" if outcome == "sent" else outcome
        try:
            senders.post_digest(digest_of(connection, run_date))
            done = replace(firing, outcome="sent", detail="Slack digest")
        except Exception as error:
            log.exception("Slack digest failed")
            done = replace(firing, outcome="failed", detail=f"Slack post failed: {type(error).__name__}: {error}")
        record_outcome(connection, [done], run_id)
        return done.outcome


def digest_of(connection: psycopg.Connection, run_date: date) -> dict:
    """What the day's digest says, read from the marts and the ledger."""
    return {"run_date": run_date, "health": health_of_the_day(connection, run_date),
            "signals": active_signals(connection, run_date), "revenue": latest_revenue(connection, run_date),
            "firings": day_outcomes(connection, run_date),
            "unknown": [row for row in unknown_firings(connection) if row["company_id"]]}


def digest_message(digest: dict) -> dict:
    """A Slack payload (`{"text": …, "blocks": […]}`) for the day's digest."""
    run_date, health, signals, revenue = digest["run_date"], digest["health"], digest["signals"], digest["revenue"]
    lines = []
    if health:
        total = sum(health["statuses"].values())
        mix = " / ".join(f"{STATUS_ICONS[status]} {status} {health['statuses'].get(status, 0):,} "
                         f"({health['statuses'].get(status, 0) / total:.0%})" for status in HEALTH_STATUSES)
        changes = ", ".join(f"{transition} {count}" for transition, count in health["transitions"].items())
        lines += [f"*ヘルス* ({total:,}社): {mix}", f"*ステータス変化*: {changes or 'なし'}"]
        if health.get("rubric_change"):
            lines.append(f"*ルーブリック*: {format_rubric_change(health['rubric_change'], 'ja')}")
    else:
        lines.append(f"*ヘルス*: {run_date} のスコアがありません")
    kinds = {"risk": "リスク", "expansion": "拡大"}
    if signals:
        counts = "; ".join(f"{kinds.get(kind, kind)} {sum(keys.values())} ("
                           + ", ".join(f"{key} {count}" for key, count in keys.items()) + ")"
                           for kind, keys in signals.items())
        lines.append(f"*アクティブなシグナル*: {sum(sum(keys.values()) for keys in signals.values())}件 — {counts}")
    else:
        lines.append("*アクティブなシグナル*: なし")
    if revenue:
        lines.append(f"*NRR* {revenue['month_start']:%Y-%m}: {percent(revenue['nrr'])}"
                     f"（直近12か月 {percent(revenue['nrr_t12m'])}）, MRR ¥{revenue['closing_mrr']:,.0f}")
    else:
        lines.append("*NRR*: 売上データがありません")
    fired = Counter()
    for row in digest["firings"]:
        fired[row["outcome"]] += row["firings"]
    if fired:
        lines.append("*プレイブック*: " + ", ".join(f"{outcome} {count}" for outcome, count in sorted(fired.items())))
    if digest["unknown"]:
        lines.append(f"*送信結果が不明*: {len(digest['unknown'])}件 — 届いたか確認のうえ、必要なら "
                     f"`csops activation resend --date …` で再送")
    title = f"CS デイリーダイジェスト {run_date}"
    return {"text": f"{title}: " + " | ".join(line.replace("*", "") for line in lines),
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": title}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}
