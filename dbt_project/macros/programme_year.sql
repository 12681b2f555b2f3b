{#
    The programme year of a month, as a SQL integer: 1 for the twelve months starting with
    var('kpi_programme_start') (the first month of Year 1), 2 for the next twelve, and so on; null for a
    month before the programme. `month_start` is a SQL expression for the first day of the month.
#}
{% macro programme_year(month_start) -%}
    {%- set programme_start = "cast('" ~ var('kpi_programme_start') ~ "' as date)" -%}
    case
        when {{ month_start }} >= {{ programme_start }} then
            cast(floor((
                (extract(year from {{ month_start }}) - extract(year from {{ programme_start }})) * 12
                + extract(month from {{ month_start }}) - extract(month from {{ programme_start }})
            ) / 12) as integer) + 1
    end
{%- endmacro %}
