"""
### cs_daily — the Customer Success daily pipeline

Every morning (06:30 Asia/Tokyo) this DAG brings the product, billing and CRM data into the warehouse
and rebuilds the CS marts for the **last complete business day**: the Tokyo date of the run's logical
date minus one day. The 06:30 run on 21 November computes 20 November, a day whose activity is all in.
A backfill over logical dates L1..L2 computes business dates L1−1..L2−1; re-running or backfilling a past
date rebuilds that date's mart rows and leaves later dates as they are.

1. **nexpro_extract** — one task per Nexpro product-DB table: incremental copy into `raw_nexpro`
   (watermark on `updated_at`, re-reading `overlap_minutes` behind it; COPY-streamed, merged on the key,
   audited in `ops.extract_runs`, bad rows to `ops.quarantine`). Rows deleted in the source are flagged
   `_deleted_at` in raw (staging leaves them out). Then `load_csv_inbox` merges usage CSV exports dropped
   into the inbox; a bad file goes to `rejected/` with a reason file and never stops the run.
2. **salesforce_extract** — in parallel with Nexpro, one task per Salesforce object (Account, Contact,
   Opportunity, Task, Event, User and the CS custom objects) through the `salesforce_default`
   connection: `queryAll` of the rows modified since the watermark (`SystemModstamp`, re-reading
   `overlap_minutes`), REST or a Bulk API 2.0 job for big increments, into `raw_salesforce`. Deleted
   records are flagged `_deleted_at`; a field added in Salesforce becomes a raw column. API calls are
   counted; before the org's daily budget reserve is touched the load stops and resumes next run.
3. **board_extract** — in parallel too, one task per board resource (clients, projects, invoices with
   their line items) through the `board_default` connection, one at a time and paced under board's 3
   requests a second, into `raw_board` (typed columns plus the record as sent). At board's daily limit a
   load stops cleanly and resumes next run; 5xx answers and dropped connections are tried again. board's
   list has no deleted records, so deletes are found by complete reads: a full load, or a reconciliation
   (every id read again) when the last complete read is older than a week (`CS_BOARD_RECONCILE_DAYS`).
4. **source_freshness** — `dbt source freshness`: how long ago the loader last succeeded for each table.
   Runs even when a load failed, which is when it matters.
5. **dbt** — the dbt project through Cosmos's watcher mode: `dbt_producer_watcher` runs one `dbt build`
   of every seed, model and test (4 at a time); then a task per model and seed (`<model>.run`) and per
   model's tests (`<model>.test`) reports its result from that build, in the models' order, and fails when
   its node failed (dbt skips what is downstream of a failure; here it is `upstream_failed`). A failed
   build's retry runs no dbt: it hands its results over to those tasks, and a failed one's retry runs its
   model alone. `nodes_passed` runs last and fails the run on any failed model or test. Results land in
   `ops.dbt_node_results`. The task that finishes a mart (its tests') updates the mart's Asset
   (`csops.marts.<model>`), which downstream DAGs can be scheduled on.
6. **dbt_docs** — `dbt docs generate`, published to the folder the Airflow UI serves as "dbt Docs"
   (models, columns, tests, lineage, the dashboards' exposures, the warehouse's catalog).
7. **summarize** — always runs, whatever happened upstream (a teardown task, so the run still fails when
   something failed): what failed first (task, table, error), then rows loaded, deleted and quarantined
   per table, rejected files, stale sources, the last closed month's NRR, the run date's health mix and
   status changes, models and tests. Stored in `ops.run_summaries`.

**Params** (Trigger DAG w/ config): `full_refresh` — tables/objects to reload from scratch, or `["all"]`;
`overlap_minutes` — how far behind the watermark incremental loads re-read (default 60);
`reconcile_board` — read every board id now to find deletes, whatever the last reconciliation's age.
Full refresh names are Nexpro table names or Salesforce object names (`Account`). `rebuild_marts` —
rebuild the incremental marts from scratch (`dbt --full-refresh`).

Re-running any date is safe: loads merge on keys and marts are rebuilt for that date.
Connections: `cs_warehouse` (the warehouse) and `nexpro_db` (the product DB), both Postgres;
`salesforce_default` (the Salesforce org: username, password, security token; a proxy and CA bundle for
the local sandbox); `board_default` (the board API: base URL as host, token as password, `api_key` extra).
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task, task_group, teardown
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    PRODUCER_WATCHER_TASK_ID,
    DbtResourceType,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
)
from cosmos.operators.local import DbtDocsLocalOperator, DbtSourceLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping

from csops import settings
from csops.dbt_docs import publish_docs
from csops.extract.board_resources import BOARD_RESOURCES
from csops.extract.nexpro_tables import NEXPRO_TABLES, RAW_SCHEMA, SOURCE_NAME
from csops.extract.salesforce_objects import SALESFORCE_OBJECTS
from csops_airflow.assets import mart_asset
from csops_airflow.connections import postgres_conninfo

DBT_PROJECT = settings.dbt_project_dir()
DBT_MANIFEST = DBT_PROJECT / "target" / "manifest.json"
if not DBT_MANIFEST.exists():
    raise FileNotFoundError(
        f"{DBT_MANIFEST} is missing: cs_daily's dbt tasks are rendered from it. Create it with `make manifest` "
        f"(or `dbt parse --project-dir {DBT_PROJECT} --profiles-dir {DBT_PROJECT}`; no database needed); "
        f"`make install`, `csops run` and the Docker image build do it for you.")
# The one `dbt build` of a run builds this many models at a time (the warehouse does the work), as a process
# of its own: the dbt installed beside this Python, else the one on PATH.
DBT_THREADS = int(os.environ.get("CS_DBT_THREADS", "4"))
DBT_BESIDE_PYTHON = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(DBT_BESIDE_PYTHON) if DBT_BESIDE_PYTHON.exists() else shutil.which("dbt") or "dbt"
# A run triggered through the REST API may have no logical date: then the moment it was asked to run.
RUN_DATE = "{{ run_date_for(dag_run.logical_date or dag_run.run_after) }}"
PROFILE = ProfileConfig(
    profile_name="csops",
    target_name="airflow",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id=settings.WAREHOUSE_CONN_ID, profile_args={"schema": "analytics", "threads": DBT_THREADS}),
)
DBT_ARGS = {
    "install_deps": False,
    "vars": {"run_date": RUN_DATE},
    "env": {"CS_AIRFLOW_RUN_ID": "{{ run_id }}"},
}


def model_task(group: DbtTaskGroup, model: str):
    """The task that finishes a model: the one reporting its tests, or its own when it has none."""
    prefix = f"{group.group_id}.{model}"
    tested = group.children.get(prefix)
    return tested.children[f"{prefix}.test"] if tested else group.children[f"{prefix}_run"]


@dag(
    dag_id="cs_daily",
    schedule="30 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.BUSINESS_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cs", "nexpro", "salesforce", "board", "dbt"],
    user_defined_macros={"run_date_for": settings.run_date_for},
    params={
        "full_refresh": Param(
            [], type="array",
            items={"type": "string",
                   "enum": ["all", *(table.name for table in NEXPRO_TABLES), *SALESFORCE_OBJECTS, *BOARD_RESOURCES]},
            title="Full refresh",
            description="Nexpro tables, Salesforce objects and board resources to reload from scratch instead "
                        "of incrementally, or all."),
        "rebuild_marts": Param(
            False, type="boolean", title="Rebuild incremental marts",
            description="Rebuild incremental models from scratch (dbt --full-refresh), e.g. after a source was "
                        "reloaded in full with rows it no longer has."),
        "reconcile_board": Param(
            False, type="boolean", title="Reconcile board now",
            description="Read every board id in this run to find records deleted in board (otherwise done when "
                        "the last complete read is older than CS_BOARD_RECONCILE_DAYS, default 7)."),
        "overlap_minutes": Param(
            settings.DEFAULT_OVERLAP_MINUTES, type="integer", minimum=0, title="Watermark overlap (minutes)",
            description="Incremental loads re-read rows updated this long before the watermark, to catch "
                        "late commits. Set it above the source application's longest write transaction."),
    },
    default_args={
        "owner": "cs-data",
        "retries": int(os.environ.get("CS_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
    },
)
def cs_daily():
    @task_group(group_id="nexpro_extract")
    def nexpro_extract():
        @task(map_index_template="{{ table_name }}")
        def load_table(table_name: str) -> dict:
            from csops.extract.engine import load_table as load
            from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME

            context = get_current_context()
            context["table_name"] = table_name  # names the mapped task instance in the UI
            params = context["params"]
            return load(postgres_conninfo(settings.NEXPRO_CONN_ID), postgres_conninfo(settings.WAREHOUSE_CONN_ID),
                        NEXPRO_TABLES_BY_NAME[table_name], source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA,
                        run_id=context["run_id"], overlap=timedelta(minutes=int(params["overlap_minutes"])),
                        full_refresh=bool({"all", table_name} & set(params["full_refresh"]))).outcome()

        @task
        def load_csv_inbox() -> list[dict]:
            from csops.extract.csv_inbox import process_inbox
            from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME

            context = get_current_context()
            moment = context["dag_run"].logical_date or context["dag_run"].run_after
            processed_on = pendulum.parse(settings.business_date(moment))
            outcomes = process_inbox(postgres_conninfo(settings.WAREHOUSE_CONN_ID), settings.inbox_dir(),
                                     NEXPRO_TABLES_BY_NAME, source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA,
                                     run_id=context["run_id"], today=processed_on.date())
            return [{"file": o.file, "table": o.table, "status": o.status, "rows": o.rows} for o in outcomes]

        load_table.expand(table_name=[table.name for table in NEXPRO_TABLES]) >> load_csv_inbox()

    @task_group(group_id="salesforce_extract")
    def salesforce_extract():
        @task(map_index_template="{{ object_name }}", max_active_tis_per_dagrun=4)
        def load_object(object_name: str) -> dict:
            from csops.extract.salesforce import CountingSession, SalesforceApi, connect_with_hook
            from csops.extract.salesforce import load_object as load

            context = get_current_context()
            context["object_name"] = object_name  # names the mapped task instance in the UI
            params = context["params"]
            api = SalesforceApi(connect_with_hook(settings.SALESFORCE_CONN_ID),
                                CountingSession(reserve_share=settings.salesforce_api_reserve()))
            return load(api, postgres_conninfo(settings.WAREHOUSE_CONN_ID), object_name, run_id=context["run_id"],
                        overlap=timedelta(minutes=int(params["overlap_minutes"])),
                        full_refresh=bool({"all", object_name} & set(params["full_refresh"])),
                        bulk_threshold=settings.salesforce_bulk_threshold()).outcome()

        load_object.expand(object_name=list(SALESFORCE_OBJECTS))

    @task_group(group_id="board_extract")
    def board_extract():
        # One at a time: board allows 3 requests a second per API key, shared by all of them.
        @task(map_index_template="{{ resource }}", max_active_tis_per_dagrun=1)
        def load_resource(resource: str) -> dict:
            from csops.extract.board import load_resource as load
            from csops_airflow.board import BoardHook

            context = get_current_context()
            context["resource"] = resource  # names the mapped task instance in the UI
            params = context["params"]
            return load(BoardHook(settings.BOARD_CONN_ID).get_conn(), postgres_conninfo(settings.WAREHOUSE_CONN_ID),
                        resource, run_id=context["run_id"], overlap=timedelta(minutes=int(params["overlap_minutes"])),
                        full_refresh=bool({"all", resource} & set(params["full_refresh"])),
                        reconcile_every=timedelta(0) if params["reconcile_board"]
                        else settings.board_reconcile_every()).outcome()

        load_resource.expand(resource=list(BOARD_RESOURCES))

    source_freshness = DbtSourceLocalOperator(
        task_id="source_freshness",
        project_dir=DBT_PROJECT,
        profile_config=PROFILE,
        invocation_mode=InvocationMode.DBT_RUNNER,
        trigger_rule="all_done",
        **DBT_ARGS,
    )

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT, manifest_path=DBT_MANIFEST),
        profile_config=PROFILE,
        # One `dbt build` of the whole project (the producer task) and, per model and seed, a task that reports
        # its result (and one for its tests) as it arrives.
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=DBT_EXECUTABLE,
            # The producer's retry never runs dbt again: it hands the node results it got over to the model
            # tasks, which then show which model or test failed, and retry that one alone.
            setup_operator_args={"retries": 1, "retry_delay": timedelta(0)},
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # dbt build runs each model's tests right after it and skips what is downstream of a failure; in
            # Airflow a model's tests are a task after the model's (a relationships test counts for both models).
            test_behavior=TestBehavior.AFTER_EACH,
            should_detach_multiple_parents_tests=False,
            # The on-run-end hook runs once at the end of the build; it is not a task of its own.
            exclude=["resource_type:operation"],
            # Cosmos would emit an Asset per model, at run time, named after the warehouse's host and port;
            # the DAG declares its own mart Assets instead (mart_asset), registered when the DAG is parsed.
            emit_datasets=False,
        ),
        operator_args={**DBT_ARGS, "full_refresh": "{{ params.rebuild_marts }}"},
    )
    producer = dbt.children[f"dbt.{PRODUCER_WATCHER_TASK_ID}"]
    # The model tasks start once the build is over and read its results. (Started alongside it, they would wait
    # for results that `airflow dags test`, running one task at a time, would never produce.) A failed build
    # hands its results over on its retry; when a load failed, the build and its tasks do not run.
    for root in dbt.get_roots():
        if root is not producer:
            producer >> root
            root.trigger_rule = TriggerRule.NONE_FAILED
    for node in dbt.dbt_graph.filtered_nodes.values():
        if node.resource_type == DbtResourceType.MODEL and node.fqn[1] == "marts":
            model_task(dbt, node.name).outlets = [mart_asset(node.name)]

    # A failed build hands over to the model tasks, but not every node has one (a test of no model): once every
    # model task passed (retries included), the run still fails on any model or test whose latest result failed.
    # (When a model task failed or a load did, this is `upstream_failed`, which fails the run.)
    @task(task_group=dbt, trigger_rule=TriggerRule.NONE_FAILED, retries=0)
    def nodes_passed() -> None:
        from csops.summary import failed_dbt_nodes

        failed = failed_dbt_nodes(postgres_conninfo(settings.WAREHOUSE_CONN_ID), get_current_context()["run_id"])
        if failed:
            raise RuntimeError(f"{len(failed)} dbt node(s) failed: "
                               + "; ".join(f"{failure['what']}: {failure['error']}" for failure in failed))

    list(dbt.get_leaves()) >> nodes_passed()

    # The warehouse's docs site (models, columns, tests, lineage, the dashboards' exposures and the tables'
    # catalog), published for the Airflow UI's "dbt Docs" page. It runs once the build is over, whatever its
    # outcome (the site then shows what the warehouse holds), beside the model tasks: a leaf of its own, so its
    # success never hides their failure.
    dbt_docs = DbtDocsLocalOperator(
        task_id="dbt_docs",
        project_dir=DBT_PROJECT,
        profile_config=PROFILE,
        invocation_mode=InvocationMode.SUBPROCESS,
        dbt_executable_path=DBT_EXECUTABLE,
        callback=publish_docs,
        trigger_rule=TriggerRule.ALL_DONE,
        **DBT_ARGS,
    )

    # A teardown: runs once everything upstream is done, whatever its outcome, and does not count
    # towards the run's state, so a run whose loads failed still fails after being summarized.
    @teardown
    def summarize(run_date: str) -> dict:
        from csops.summary import format_summary, run_summary, store_summary

        context = get_current_context()
        run_id = context["run_id"]
        task_states = context["ti"].get_task_states(dag_id=context["dag"].dag_id, run_ids=[run_id]).get(run_id, {})
        warehouse = postgres_conninfo(settings.WAREHOUSE_CONN_ID)
        summary = run_summary(warehouse, run_id, task_states=task_states, run_date=date.fromisoformat(run_date))
        text = format_summary(summary)
        store_summary(warehouse, run_id, summary, text)
        print(text)
        return {"run_id": run_id, "failures": len(summary["failures"])}

    extracts = [nexpro_extract(), salesforce_extract(), board_extract()]
    for extract in extracts:
        extract >> [source_freshness, dbt]
    producer >> dbt_docs
    [source_freshness, dbt, dbt_docs] >> summarize(RUN_DATE)


cs_daily()
