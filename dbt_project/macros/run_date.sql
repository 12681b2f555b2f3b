{#
    The business date the run is "as of", as a SQL date literal. It comes from var('run_date'),
    which the DAG passes (`--vars '{run_date: 2026-11-20}'`) and which otherwise defaults to the last
    complete day in Asia/Tokyo, i.e. yesterday there (see dbt_project.yml; the pipeline's rule, mirrored).
    Anything not shaped YYYY-MM-DD stops the run before it starts.
#}
{% macro run_date() -%}
    {%- set value = var('run_date') | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var('run_date') must be a date as YYYY-MM-DD, got '" ~ value ~ "'. "
            ~ "Pass it as --vars '{run_date: 2026-11-20}' or leave it out to use yesterday in Asia/Tokyo "
            ~ "(the last complete day)."
        ) }}
    {%- endif -%}
    {%- do modules.datetime.datetime.strptime(value, '%Y-%m-%d') -%}
    cast('{{ value }}' as date)
{%- endmacro %}
