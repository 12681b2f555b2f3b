"""
### cs_activation — closing the loop in Salesforce, e-mail and Slack

Runs as soon as `cs_daily` has rebuilt the health scores and the signals (it is scheduled on their Assets,
`csops.marts.fct_health_scores` and `csops.marts.fct_company_signals`), for the business date that cs_daily run
computed. A run triggered by hand acts on the `run_date` param, or on the previous Tokyo day.

1. **killswitch** — decides whether the date may fire, and keeps the verdict in `ops.killswitch_verdicts`:
   every source table loaded after the run date ended (`ops.extract_runs`), no failed model or test in the
   day's dbt build (`ops.dbt_node_results`), and not more than `CS_ACTIVATION_MAX_FIRING_SHARE` (30%) of
   the scored companies getting a playbook on the date (standing conditions count). When a check fails,
   nothing below runs: the firings are recorded `stopped` in `ops.playbook_firings` and the ops team is
   alerted in Slack and by the `killswitch_alert` e-mail (once per date); later dates stay held until the
   checks pass again or someone overrides. A date older than the latest one activated, or built by a
   backfill of cs_daily, never fires (`skipped_backfill`).
2. **write_back** — the diff-only sync of the health fields, health history, usage and revenue to Salesforce.
3. **playbooks** — the day's candidates (`activation.playbook_candidates`, from the seed `playbooks`) checked
   against the ledger `ops.playbook_firings` (one firing per company, playbook and date; each playbook's
   cooldown; the next onboarding step) and fired: Salesforce Tasks and Opportunity drafts upserted by
   `Playbook_Firing_Key__c`, e-mails to the key contacts, the day's status changes in Slack. Each firing is
   claimed in the ledger before it is sent and its outcome recorded right after; one whose process died is
   `unknown` and is never sent again by itself.
4. **slack_digest** — the CS managers' daily digest, once per date.
5. **summarize** — always runs: the killswitch's verdict, rows written back, tasks created, e-mails sent,
   alerts posted, what was skipped, failed or stopped. Stored in `ops.run_summaries`.

**Params**: `dry_run` — record what would fire and send nothing (default `CS_ACTIVATION_DRY_RUN`);
`run_date` — the business date to act on (YYYY-MM-DD; empty: the triggering cs_daily run's date);
`override_killswitch` — fire even though the killswitch tripped, once someone has checked the inputs.

Re-running a date is safe: what was sent or created for it is never sent again; what failed, was stopped or
was only a dry run is tried again. One activation of a date runs at a time (a second is refused).
Connections: `cs_warehouse`, `salesforce_default`, `smtp_default`, `slack_default`.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task, teardown

from csops import settings
from csops_airflow.assets import mart_asset
from csops_airflow.connections import postgres_conninfo

# cs_daily publishes these when their models (and tests) finish; the activation needs both, of the same date.
SCHEDULED_ON = [mart_asset("fct_health_scores"), mart_asset("fct_company_signals")]


def warehouse() -> str:
    return postgres_conninfo(settings.WAREHOUSE_CONN_ID)


def stop_unless_it_fires(verdict: dict) -> tuple[date, bool, str]:
    """The verdict's date, the dry-run flag and the run id; skip the task when the killswitch holds the date."""
    from airflow.exceptions import AirflowSkipException

    if verdict["tripped"]:
        raise AirflowSkipException(f"the killswitch ({verdict['decision']}) holds {verdict['run_date']}: "
                                   + "; ".join(verdict["reasons"]))
    context = get_current_context()
    return date.fromisoformat(verdict["run_date"]), bool(context["params"]["dry_run"]), context["run_id"]


def salesforce_client():
    """A logged-in simple-salesforce client over the `salesforce_default` connection."""
    from csops.extract.salesforce import CountingSession, connect_with_hook

    return connect_with_hook(settings.SALESFORCE_CONN_ID)(
        CountingSession(reserve_share=settings.salesforce_api_reserve()))


@dag(
    dag_id="cs_activation",
    schedule=SCHEDULED_ON,
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.BUSINESS_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cs", "activation", "salesforce", "email", "slack"],
    params={
        "dry_run": Param(
            settings.activation_dry_run(), type="boolean", title="Dry run",
            description="Record in ops.playbook_firings what would fire, and send nothing (no Salesforce "
                        "write, no e-mail, no Slack post)."),
        "run_date": Param(
            "", type="string", title="Run date",
            description="The business date to act on (YYYY-MM-DD); empty: the date the triggering cs_daily run "
                        "computed, or the previous Tokyo day.",
            pattern=r"^(\d{4}-\d{2}-\d{2})?$"),
        "override_killswitch": Param(
            False, type="boolean", title="Override the killswitch",
            description="Fire even though the killswitch found the inputs broken, after checking them by hand "
                        "(kept in ops.killswitch_verdicts with who triggered the run)."),
    },
    default_args={
        "owner": "cs-data",
        "retries": int(os.environ.get("CS_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
    },
)
def cs_activation():
    @task(retries=0)
    def killswitch() -> dict:
        import psycopg

        from csops.activation.channels import ChannelSenders
        from csops.activation.killswitch import check_and_stop
        from csops_airflow.assets import activation_date

        context = get_current_context()
        params, dag_run = context["params"], context["dag_run"]
        events = [event for asset_events in context["triggering_asset_events"].values() for event in asset_events]
        day = activation_date(params["run_date"], events, dag_run.logical_date, dag_run.run_after)
        override_by = None
        if params["override_killswitch"]:
            override_by = getattr(dag_run, "triggering_user_name", None) or f"the trigger of run {context['run_id']}"
        with psycopg.connect(warehouse(), autocommit=True) as connection:
            verdict = check_and_stop(connection, ChannelSenders(), day.run_date, dry_run=bool(params["dry_run"]),
                                     max_share=settings.activation_max_firing_share(), run_id=context["run_id"],
                                     daily_run_id=day.daily_run_id, override_by=override_by,
                                     backfill=day.backfill)
        return verdict.as_dict()

    @task
    def write_back(verdict: dict) -> dict:
        from csops.activation.writeback import write_back as sync

        run_date, dry_run, run_id = stop_unless_it_fires(verdict)
        report = sync(warehouse(), None if dry_run else salesforce_client(), run_date, dry_run=dry_run, run_id=run_id)
        if report.error:
            raise RuntimeError(f"the write-back stopped: {report.error}")
        return report.as_dict()

    # Runs after the write-back whatever it did (a failed sync does not hold the CSMs' tasks back); the
    # killswitch still stops it, and without its verdict nothing fires.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def playbooks(verdict: dict) -> dict:
        import psycopg

        from csops.activation.channels import ChannelSenders
        from csops.activation.playbooks import run_playbooks

        run_date, dry_run, run_id = stop_unless_it_fires(verdict)
        senders = ChannelSenders(None if dry_run else salesforce_client())
        with psycopg.connect(warehouse(), autocommit=True) as connection:
            return run_playbooks(connection, senders, run_date, dry_run=dry_run, run_id=run_id)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def slack_digest(verdict: dict) -> str:
        import psycopg

        from csops.activation.channels import ChannelSenders
        from csops.activation.digest import post_digest

        run_date, dry_run, run_id = stop_unless_it_fires(verdict)
        with psycopg.connect(warehouse(), autocommit=True) as connection:
            return post_digest(connection, ChannelSenders(), run_date, dry_run=dry_run, run_id=run_id)

    # A teardown, like cs_daily's: runs whatever happened and does not count towards the run's state.
    @teardown
    def summarize() -> dict:
        from csops.summary import activation_summary, format_activation_summary, store_summary
        from csops_airflow.assets import activation_date

        context = get_current_context()
        ti, dag_run, run_id = context["ti"], context["dag_run"], context["run_id"]
        verdict = ti.xcom_pull(task_ids="killswitch")
        run_date = (date.fromisoformat(verdict["run_date"]) if verdict else activation_date(
            context["params"]["run_date"], [], dag_run.logical_date, dag_run.run_after).run_date)
        task_states = ti.get_task_states(dag_id=context["dag"].dag_id, run_ids=[run_id]).get(run_id, {})
        summary = activation_summary(warehouse(), run_id, run_date, dry_run=bool(context["params"]["dry_run"]),
                                     verdict=verdict, write_back=ti.xcom_pull(task_ids="write_back"),
                                     task_states=task_states)
        text = format_activation_summary(summary)
        store_summary(warehouse(), run_id, summary, text)
        print(text)
        return {"run_id": run_id, "failures": len(summary["failures"])}

    verdict = killswitch()
    synced, fired, digest = write_back(verdict), playbooks(verdict), slack_digest(verdict)
    synced >> fired >> digest >> summarize()


cs_activation()
