"""One activation of a date in this process: what cs_activation's tasks do, in the same order (killswitch,
write-back, playbooks, digest), for `csops activation run` — an operator without the scheduler, and the
crash tests, which kill this process at random moments."""

from __future__ import annotations

import logging
from datetime import date

import psycopg

from csops import settings
from csops.activation.channels import ChannelSenders
from csops.activation.digest import post_digest
from csops.activation.killswitch import check_and_stop
from csops.activation.playbooks import run_playbooks
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
