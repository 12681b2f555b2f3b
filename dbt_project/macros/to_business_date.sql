{#
    The business date (Asia/Tokyo) of a UTC timestamptz column: 2026-01-31T16:00:00Z is 2026-02-01.
    Every `<event>_date` derived from an `<event>_at` goes through here, so the business time zone
    lives in one place (the default run_date in dbt_project.yml uses the same zone).
#}
{% macro to_business_date(column_name) -%}
    {{ return(adapter.dispatch('to_business_date', 'csops')(column_name)) }}
{%- endmacro %}

{% macro default__to_business_date(column_name) -%}
    cast(({{ column_name }} at time zone 'Asia/Tokyo') as date)
{%- endmacro %}
