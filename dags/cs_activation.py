"""
### cs_activation — closing the loop in Salesforce, e-mail and Slack

Runs as soon as `cs_daily` has rebuilt the health scores and the signals (it is scheduled on their Assets,
`csops.marts.fct_health_scores` and `csops.marts.fct_company_signals`), for the business date that cs_daily run
computed. A run triggered by hand acts on the `run_date` param, or on the previous Tokyo day.

1. **killswitch** — checks the day's inputs before anything leaves the platform: every source table loaded
   after the run date ended (`ops.extract_runs`), no failed model or test in the day's dbt build
   (`ops.dbt_node_results`), and not more than `CS_ACTIVATION_MAX_FIRING_SHARE` (30%) of the companies
   firing at once for something that started that day. When a check fails, nothing below runs: the
   firings are recorded `stopped` in `ops.playbook_firings` and the ops team is alerted in Slack and by the
   `killswitch_alert` e-mail (once per date).
2. **write_back** — the diff-only sync of the health fields, health history, usage and revenue to Salesforce.
3. **playbooks** — the day's candidates (`activation.playbook_candidates`, from the seed `playbooks`) checked
   against the ledger `ops.playbook_firings` (one firing per company, playbook and date; each playbook's
   cooldown; the next onboarding step) and fired: Salesforce Tasks and Opportunity drafts upserted by
   `Playbook_Firing_Key__c`, e-mails to the key contacts, the day's status changes in Slack.
4. **slack_digest** — the CS managers' daily digest, once per date.
5. **summarize** — always runs: the killswitch's verdict, rows written back, tasks created, e-mails sent,
   alerts posted, what was skipped, failed or stopped. Stored in `ops.run_summaries`.

**Params**: `dry_run` — record what would fire and send nothing (default `CS_ACTIVATION_DRY_RUN`);
`run_date` — the business date to act on (YYYY-MM-DD; empty: the triggering cs_daily run's date);
`override_killswitch` — fire even though the killswitch tripped, once someone has checked the inputs.

Re-running a date is safe: what was sent or created for it is never sent again; what failed, was stopped or
was only a dry run is tried again. Connections: `cs_warehouse`, `salesforce_default`, `smtp_default`,
`slack_default`.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task, teardown

from csops import settings
from csops_airflow.assets import mart_asset
from csops_airflow.connections import postgres_conninfo

# cs_daily publishes these when their models (and tests) finish; the activation needs both for the same run.
SCHEDULED_ON = [mart_asset("fct_health_scores"), mart_asset("fct_company_signals")]


def run_context() -> dict:
    """The run's business date, dry-run flag and warehouse, from the killswitch's verdict (or worked out again
    when the killswitch itself failed)."""
    from csops.activation.playbooks import activation_run_date

    context = get_current_context()
    params = context["params"]
    verdict = context["ti"].xcom_pull(task_ids="killswitch")
    if verdict:
        run_date = date.fromisoformat(verdict["run_date"])
    else:
        dag_run = context["dag_run"]
        run_date, _ = activation_run_date(params["run_date"], [], dag_run.logical_date, dag_run.run_after)
    return {"run_date": run_date, "dry_run": bool(params["dry_run"]), "verdict": verdict,
            "run_id": context["run_id"], "warehouse": postgres_conninfo(settings.WAREHOUSE_CONN_ID)}


def stop_if_tripped(verdict: dict | None) -> None:
    from airflow.exceptions import AirflowSkipException

    if verdict and verdict["tripped"]:
        raise AirflowSkipException("the killswitch stopped the activation for " + verdict["run_date"] + ": "
                                   + "; ".join(verdict["reasons"]))


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
            description="Fire even though the killswitch found the inputs broken, after checking them by hand."),
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

        from csops.activation.playbooks import ChannelSenders, activation_run_date, check_and_stop

        context = get_current_context()
        params, dag_run = context["params"], context["dag_run"]
        events = [event for asset_events in context["triggering_asset_events"].values() for event in asset_events]
        run_date, daily_run_id = activation_run_date(params["run_date"], events, dag_run.logical_date,
                                                     dag_run.run_after)
        warehouse = postgres_conninfo(settings.WAREHOUSE_CONN_ID)
        with psycopg.connect(warehouse, autocommit=True) as connection:
            verdict = check_and_stop(connection, ChannelSenders(None, warehouse), run_date,
                                     dry_run=bool(params["dry_run"]), max_share=settings.activation_max_firing_share(),
                                     run_id=context["run_id"], daily_run_id=daily_run_id,
                                     override=bool(params["override_killswitch"]))
        return verdict.as_dict()

    @task
    def write_back() -> dict:
        from csops.activation.writeback import write_back as sync

        run = run_context()
        stop_if_tripped(run["verdict"])
        report = sync(run["warehouse"], None if run["dry_run"] else salesforce_client(), run["run_date"],
                      dry_run=run["dry_run"], run_id=run["run_id"])
        if report.error:
            raise RuntimeError(f"the write-back stopped: {report.error}")
        return report.as_dict()

    # Runs after the write-back whatever it did (a failed sync does not hold the CSMs' tasks back); the
    # killswitch still stops it.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def playbooks() -> dict:
        import psycopg

        from csops.activation.playbooks import ChannelSenders, run_playbooks

        run = run_context()
        stop_if_tripped(run["verdict"])
        if run["verdict"] is None:
            raise RuntimeError("the killswitch did not run to the end: nothing fires without its verdict")
        senders = ChannelSenders(None if run["dry_run"] else salesforce_client(), run["warehouse"])
        with psycopg.connect(run["warehouse"], autocommit=True) as connection:
            return run_playbooks(connection, senders, run["run_date"], dry_run=run["dry_run"], run_id=run["run_id"])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def slack_digest() -> str:
        import psycopg

        from csops.activation.playbooks import ChannelSenders, post_digest

        run = run_context()
        stop_if_tripped(run["verdict"])
        if run["verdict"] is None:
            raise RuntimeError("the killswitch did not run to the end: no digest without its verdict")
        with psycopg.connect(run["warehouse"], autocommit=True) as connection:
            return post_digest(connection, ChannelSenders(None, run["warehouse"]), run["run_date"],
                               dry_run=run["dry_run"], run_id=run["run_id"])

    # A teardown, like cs_daily's: runs whatever happened and does not count towards the run's state.
    @teardown
    def summarize() -> dict:
        from csops.summary import activation_summary, format_activation_summary, store_summary

        context = get_current_context()
        run = run_context()
        task_states = context["ti"].get_task_states(dag_id=context["dag"].dag_id,
                                                    run_ids=[run["run_id"]]).get(run["run_id"], {})
        summary = activation_summary(run["warehouse"], run["run_id"], run["run_date"], dry_run=run["dry_run"],
                                     verdict=run["verdict"], write_back=context["ti"].xcom_pull(task_ids="write_back"),
                                     task_states=task_states)
        text = format_activation_summary(summary)
        store_summary(run["warehouse"], run["run_id"], summary, text)
        print(text)
        return {"run_id": run["run_id"], "failures": len(summary["failures"])}

    checked, synced, fired, digest = killswitch(), write_back(), playbooks(), slack_digest()
    checked >> synced >> fired >> digest >> summarize()


cs_activation()
