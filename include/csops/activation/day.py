"""One activation of a date in this process: what cs_activation's tasks do, in the same order (killswitch,
write-back, playbooks, digest), for `csops activation run` — an operator without the scheduler, and the
crash tests, which kill this process at random moments. And `resend`: any e-mail or Slack firing of unknown
fate sent again on a person's word (`csops activation resend`)."""

from __future__ import annotations

import logging
from datetime import date

import psycopg
from psycopg.rows import dict_row

from csops import settings
from csops.activation.channels import ChannelSenders
from csops.activation.digest import DIGEST_PLAYBOOK, post_digest, resend_digest
from csops.activation.killswitch import ALERT_PLAYBOOK, check_and_stop, resend_alerts
from csops.activation.ledger import LEDGER_TABLE, Firing, ensure_ledger
from csops.activation.playbooks import SALESFORCE_OBJECT, resend_unknown, run_playbooks
from csops.activation.writeback import write_back

log = logging.getLogger(__name__)


def activate(warehouse_url: str, run_date: date, sf, *, dry_run: bool, override_by: str | None = None,
             run_id: str | None = None) -> dict:
    """Run the activation of `run_date`; `sf` is a logged-in Salesforce client (None in a dry run). Returns
    the verdict, and what each step did when the killswitch let the date fire."""
    senders = ChannelSenders(sf)
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        verdict = check_and_stop(connection, senders, run_date, dry_run=dry_run,
                                 max_share=settings.activation_max_firing_share(), run_id=run_id,
                                 override_by=override_by)
        result = {"verdict": verdict.as_dict()}
        if verdict.tripped:
            return result
        log.info("activation of %s: the write-back", run_date)
        result["write_back"] = write_back(warehouse_url, sf, run_date, dry_run=dry_run, run_id=run_id).as_dict()
        log.info("activation of %s: the playbooks", run_date)
        result["playbooks"] = run_playbooks(connection, senders, run_date, dry_run=dry_run, run_id=run_id)
        log.info("activation of %s: the digest", run_date)
        result["digest"] = post_digest(connection, senders, run_date, dry_run=dry_run, run_id=run_id)
    return result


def resend(connection: psycopg.Connection, senders: ChannelSenders, firing_keys: list[str],
           run_id: str | None = None) -> list[Firing]:
    """Send again, on a person's word, e-mails and Slack posts whose fate is unknown (they checked that the
    first one never arrived): a company's e-mail or status line, the day's digest, the killswitch's alert.
    Every key must be `unknown`, none a Salesforce firing (those are looked up by their key instead), all of
    one date; anything else is refused naming the key, before anything is sent."""
    ensure_ledger(connection)
    rows = {row["firing_key"]: row for row in connection.cursor(row_factory=dict_row).execute(
        f"select firing_key, company_id, playbook_key, run_date, action, outcome from {LEDGER_TABLE} "
        f"where firing_key = any(%s)", (firing_keys,)).fetchall()}
    problems = [f"{key}: no such firing in {LEDGER_TABLE}" for key in firing_keys if key not in rows]
    problems += [f"{key}: its outcome is {row['outcome']}, not unknown (only an unknown firing is sent on request)"
                 for key, row in rows.items() if row["outcome"] != "unknown"]
    problems += [f"{key}: a Salesforce firing; the next activation of {row['run_date']} looks it up by its key "
                 f"instead" for key, row in rows.items() if row["action"] in SALESFORCE_OBJECT]
    dates = {row["run_date"] for row in rows.values()}
    if len(dates) > 1:
        problems.append(f"the firings are of several dates ({', '.join(map(str, sorted(dates)))}): one date at a time")
    if problems:
        raise ValueError("nothing was sent:\n  " + "\n  ".join(problems))
    run_date = dates.pop()
    company = [key for key in firing_keys if rows[key]["company_id"] is not None]
    alerts = [key for key in firing_keys if rows[key]["playbook_key"].startswith(ALERT_PLAYBOOK)]
    sent = resend_unknown(connection, senders, run_date, company, run_id) if company else []
    if any(rows[key]["playbook_key"] == DIGEST_PLAYBOOK for key in firing_keys):
        sent.append(resend_digest(connection, senders, run_date, run_id))
    if alerts:
        sent += resend_alerts(connection, senders, run_date, alerts, run_id)
    return sent
