{#
    on-run-end hook: one row per node result (model, seed, data test, unit test) into
    ops.dbt_node_results, which the platform's end-of-run summary reads ("models built, tests passed").
    A data test that failed or warned also keeps the first rows of its stored failures (store_failures is on for
    every test: the rows are in dbt_test__audit.<test>), so the summary shows the test's own explanation.
    Creates the schema and table if missing. Does nothing when there are no results
    (dbt parse, compile, docs generate, or a selection that matched nothing), so it never fails
    a run on its own account.
#}
{% macro record_run_results(results) %}
    {%- if not execute or results is not defined or results is none or results | length == 0 -%}
        {{ return('') }}
    {%- endif -%}

    {%- set airflow_run_id = env_var('CS_AIRFLOW_RUN_ID', '') -%}
    {%- set run_date_value = var('run_date') | string | trim -%}
    {%- set run_date_sql = "cast(" ~ csops.sql_text(run_date_value) ~ " as date)"
        if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', run_date_value) else "null" -%}
    {%- set rows = [] -%}
    {%- set failure_rows_kept = 5 -%}
    {%- for result in results -%}
        {%- set adapter_response = result.adapter_response or {} -%}
        {#- a test's adapter response counts the rows of its own query, not of anything it built -#}
        {%- set rows_affected = adapter_response.get('rows_affected')
            if result.node.resource_type in ['model', 'seed', 'snapshot'] else none -%}
        {#- when the node's SQL started (dbt's clock, UTC): a data test next tests the rows written since -#}
        {%- set execute_started = result.timing | selectattr('name', 'equalto', 'execute')
            | map(attribute='started_at') | select | list -%}
        {%- do rows.append(
            "("
            ~ csops.sql_text(invocation_id) ~ ", "
            ~ (csops.sql_text(airflow_run_id) if airflow_run_id else "null") ~ ", "
            ~ run_date_sql ~ ", "
            ~ csops.sql_text(result.node.unique_id) ~ ", "
            ~ csops.sql_text(result.node.resource_type) ~ ", "
            ~ csops.sql_text(result.node.name) ~ ", "
            ~ csops.sql_text(result.status) ~ ", "
            ~ (result.failures if result.failures is not none else "null") ~ ", "
            ~ (result.execution_time if result.execution_time is not none else "null") ~ ", "
            ~ (rows_affected if rows_affected is not none and rows_affected >= 0 else "null") ~ ", "
            ~ (csops.sql_text(result.message[:2000]) if result.message else "null") ~ ", "
            ~ ("cast(" ~ csops.sql_text(execute_started[0].isoformat() ~ '+00') ~ " as timestamptz)"
               if execute_started else "null") ~ ", "
            ~ ("(select json_agg(failing) from (select * from " ~ result.node.relation_name ~ " limit "
               ~ failure_rows_kept ~ ") as failing), " ~ csops.sql_text(result.node.relation_name | replace('"', ''))
               if result.node.resource_type == 'test' and result.status in ['fail', 'warn']
                  and result.node.relation_name else "null, null")
            ~ ")"
        ) -%}
    {%- endfor -%}

    {%- call statement('record_run_results') -%}
        -- Airflow runs many dbt invocations (and extract loads) in parallel: the same advisory lock as the
        -- extract engine's stops two of them racing to create the ops schema or this table.
        select pg_advisory_xact_lock(hashtext('csops.ops_schema'));

        create schema if not exists ops;

        create table if not exists ops.dbt_node_results (
            invocation_id text not null,
            airflow_run_id text,
            run_date date,
            unique_id text not null,
            resource_type text not null,
            node_name text not null,
            status text not null,
            failures integer,
            execution_time double precision,
            rows_affected bigint,
            message text,
            recorded_at timestamptz not null default current_timestamp,
            primary key (invocation_id, unique_id)
        );
        alter table ops.dbt_node_results add column if not exists execute_started_at timestamptz;
        alter table ops.dbt_node_results add column if not exists failure_rows jsonb;
        alter table ops.dbt_node_results add column if not exists failures_relation text;
        create index if not exists dbt_node_results_unique_id on ops.dbt_node_results (unique_id, status);

        insert into ops.dbt_node_results (
            invocation_id,
            airflow_run_id,
            run_date,
            unique_id,
            resource_type,
            node_name,
            status,
            failures,
            execution_time,
            rows_affected,
            message,
            execute_started_at,
            failure_rows,
            failures_relation
        )
        values
        {{ rows | join(',\n        ') }}
        on conflict (invocation_id, unique_id) do nothing;
    {%- endcall -%}
    {%- do adapter.commit() -%}

    {{ return('') }}
{% endmacro %}

{#- A Python value as a quoted SQL text literal. -#}
{% macro sql_text(value) -%}
    {{- "'" ~ (value | string | replace("'", "''")) ~ "'" -}}
{%- endmacro %}
