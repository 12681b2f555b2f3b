{#
    One row per company, score date and measure: the indicator values of int_health_indicator_values in
    long form, the shape the rubric's thresholds (seed health_thresholds, column `measure`) are joined on.
    The measures are listed in macros/health_measures.sql; a threshold naming any other measure fails the
    rubric test assert_health_thresholds_name_known_measures.
#}
{%- set measures = health_measures() -%}

with

indicator_values as (

    select * from {{ ref('int_health_indicator_values') }}

),

final as (

    select
        cast(indicator_values.company_id as text) as company_id,
        cast(indicator_values.score_date as date) as score_date,
        cast(measures.measure as text) as measure,
        cast(measures.measure_value as numeric) as measure_value
    from indicator_values
    cross join lateral (
        values
        {%- for measure in measures %}
            ('{{ measure }}', cast(indicator_values.{{ measure }} as numeric)){{ ',' if not loop.last }}
        {%- endfor %}
    ) as measures (measure, measure_value)

)

select * from final
