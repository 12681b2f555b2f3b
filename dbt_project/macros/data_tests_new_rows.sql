{#
    Data tests check the rows that are new since the test last passed.

    dbt_project.yml gives every generic data test the filter `where: "__new_rows__"`, which this override of
    dbt's get_where_subquery turns into a condition on the tested relation's write-time column:

      * `loaded_at` (staging views: when the loader last wrote the raw row), or
      * `computed_at` (incremental models: when the run that wrote the row started),

    compared with the moment the same test last passed, from ops.dbt_node_results (the on-run-end hook records
    when each node started executing). So the daily build tests what the day's extract loaded and what the
    day's models rewrote, not the year of history an earlier build already tested; a test that fails keeps
    testing everything new since its last pass until it passes again; a new test, or one that never passed,
    tests every row. A relation without either column (tables rebuilt by every run, seeds) is tested whole.

    `--vars '{test_all_rows: true}'` tests every row (after changing a staging model, say, whose rows are not
    rewritten). A test's own `where` may use the placeholder too: `where: "is_held and __new_rows__"`.

    Assumes the loads and builds of one warehouse do not overlap (cs_daily runs one at a time) and that the
    dbt host's clock agrees with the warehouse's.
#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__new_rows__' in where -%}
        {%- set where = where | replace('__new_rows__', '(' ~ csops.new_rows_condition(relation) ~ ')') -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The condition that keeps the relation's rows written since this test last passed; `true` for all rows. -#}
{% macro new_rows_condition(relation) -%}
    {%- if not execute or var('test_all_rows', false) | string | lower in ['true', '1', 'yes'] -%}
        {%- do return('true') -%}
    {%- endif -%}
    {%- set column_names = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- set write_time = 'loaded_at' if 'loaded_at' in column_names
        else 'computed_at' if 'computed_at' in column_names else none -%}
    {%- set node_results = adapter.get_relation(database=target.database, schema='ops',
                                                identifier='dbt_node_results') -%}
    {%- if write_time is none or node_results is none -%}
        {%- do return('true') -%}
    {%- endif -%}
    {%- set node_result_columns = adapter.get_columns_in_relation(node_results) | map(attribute='name') | list -%}
    {%- if 'execute_started_at' not in node_result_columns -%}
        {%- do return('true') -%}
    {%- endif -%}
    {%- do return(
        write_time ~ " >= coalesce((select max(execute_started_at) from " ~ node_results
        ~ " where unique_id = " ~ csops.sql_text(model.unique_id) ~ " and status = 'pass'), '-infinity')"
    ) -%}
{%- endmacro %}
