{#
    The lineage column `computed_at` of the incremental models: when the run that wrote the row started
    (the transaction's start, timestamptz). Lineage only: no business logic reads it (that reads run_date()).
    Data tests use it to test only the rows written since they last passed (macros/data_tests_new_rows.sql);
    the rows of one run lie together, so each model keeps a small BRIN index on it that finds them.
#}
{% macro computed_at() -%}
    cast(now() as timestamptz)
{%- endmacro %}
