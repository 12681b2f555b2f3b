"""
### cs_daily — the Customer Success daily pipeline

Every morning (06:30 Asia/Tokyo) this DAG brings the product, billing and CRM data into the warehouse
and rebuilds the CS marts, "as of" the run's business date (its logical date in Asia/Tokyo).

1. **nexpro_extract** — one task per Nexpro product-DB table: incremental copy into `raw_nexpro`
   (watermark on `updated_at` with a safety overlap, COPY-streamed, merged on the key, audited in
   `ops.extract_runs`, bad rows to `ops.quarantine`). Then `load_csv_inbox` merges any usage CSV
   exports dropped into the inbox (bad files go to `rejected/` with a reason file).
2. **dbt** — the dbt project through Cosmos: one task per model/seed, each running `dbt build` for that
   node (the model, then its tests). Results land in `ops.dbt_node_results`.
3. **summarize** — logs rows loaded per table, quarantined rows and models/tests passed.

Re-running any date is safe: loads merge on keys and marts are rebuilt for that date.
Connections: `cs_warehouse` (the warehouse) and `nexpro_db` (the product DB), both Postgres.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task, task_group
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.profiles import PostgresUserPasswordProfileMapping

from csops import settings
from csops.extract.nexpro_tables import NEXPRO_TABLES, RAW_SCHEMA, SOURCE_NAME
from csops_airflow.connections import postgres_conninfo

DBT_PROJECT = settings.dbt_project_dir()
DBT_MANIFEST = DBT_PROJECT / "target" / "manifest.json"
RUN_DATE = "{{ business_date(logical_date or dag_run.run_after) }}"


@dag(
    dag_id="cs_daily",
    schedule="30 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.BUSINESS_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cs", "nexpro", "dbt"],
    user_defined_macros={"business_date": settings.business_date},
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
            result = load(postgres_conninfo(settings.NEXPRO_CONN_ID), postgres_conninfo(settings.WAREHOUSE_CONN_ID),
                          NEXPRO_TABLES_BY_NAME[table_name], source_name=SOURCE_NAME, raw_schema=RAW_SCHEMA,
                          run_id=context["run_id"])
            return {"table": table_name, "mode": result.load_mode, "read": result.rows_read,
                    "inserted": result.rows_inserted, "updated": result.rows_updated,
                    "quarantined": result.rows_quarantined}

        @task
        def load_csv_inbox() -> list[dict]:
            from csops.extract.csv_inbox import process_inbox
            from csops.extract.nexpro_tables import NEXPRO_TABLES_BY_NAME

            context = get_current_context()
            today = pendulum.parse(settings.business_date(context["logical_date"] or context["dag_run"].run_after))
            outcomes = process_inbox(postgres_conninfo(settings.WAREHOUSE_CONN_ID), settings.inbox_dir(),
                                     NEXPRO_TABLES_BY_NAME, raw_schema=RAW_SCHEMA, run_id=context["run_id"],
                                     today=today.date())
            return [{"file": o.file, "table": o.table, "status": o.status, "rows": o.rows} for o in outcomes]

        load_table.expand(table_name=[table.name for table in NEXPRO_TABLES]) >> load_csv_inbox()

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT, manifest_path=DBT_MANIFEST),
        profile_config=ProfileConfig(
            profile_name="csops",
            target_name="airflow",
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id=settings.WAREHOUSE_CONN_ID, profile_args={"schema": "analytics"}),
        ),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # A relationships test reads two models; run it once both are built, as its own task.
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={
            "install_deps": False,
            "vars": {"run_date": RUN_DATE},
            "env": {"CS_AIRFLOW_RUN_ID": "{{ run_id }}"},
        },
    )

    @task
    def summarize() -> dict:
        from csops.summary import format_summary, run_summary

        run_id = get_current_context()["run_id"]
        summary = run_summary(postgres_conninfo(settings.WAREHOUSE_CONN_ID), run_id)
        print(format_summary(summary))
        return summary

    nexpro_extract() >> dbt >> summarize()


cs_daily()
