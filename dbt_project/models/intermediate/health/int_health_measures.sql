{#
    One row per company, score date and measure: the indicator values of int_health_indicator_values in
    long form, the shape the rubric's thresholds (seed health_thresholds, column `measure`) are joined on.
    A measure the thresholds may name must be listed here; a threshold naming any other measure fails the
    rubric test assert_health_thresholds_name_known_measures.
#}
{%- set measures = [
    'login_days_30d',
    'webinars_held_30d',
    'feature_depth_rank_30d',
    'goal_achievement_rate',
    'attendee_trend_ratio',
    'touchpoints_30d',
    'touchpoints_60d',
    'key_persons',
    'months_to_renewal',
] -%}

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
