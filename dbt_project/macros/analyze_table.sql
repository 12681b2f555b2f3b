{#
    Post-hook of every model (dbt_project.yml): `analyze` a model written as a table or incremental table, so
    the models and tests that read it next are planned on its real row counts. Postgres's autovacuum would
    get there eventually, but a build reads a table seconds after writing it, and a plan made on a fresh
    table's default estimates (nested loops over millions of rows) can cost minutes. Views need nothing.
#}
{% macro analyze_table() -%}
    {%- if config.get('materialized') in ['table', 'incremental'] -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
