{#
    One row per company, score date and indicator that has data that day: the indicator's score from the
    rubric (seeds health_indicators and health_thresholds), its weight and category, how far it falls
    short of the top score, and the words a CSM reads when it pulls the score down.

    Score: the highest score whose threshold the indicator's measure reaches (measure >= min_value); the
    indicator's lowest score (its threshold row without min_value) otherwise. An indicator whose measures
    are all null has no data and no row (it is NA, not the lowest score). Every number comes from the
    seeds; this model holds none.

    Incremental like fct_health_scores: a first build (or --full-refresh) scores every date of
    int_health_indicator_values; a later run scores its run_date only, replacing whatever that date held.
#}
{{ config(
    materialized='incremental',
    unique_key='score_date',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}

with

measures as (

    select * from {{ ref('int_health_measures') }}
    {% if is_incremental() %}
    where score_date = {{ run_date() }}
    {% endif %}

),

indicators as (

    select * from {{ ref('health_indicators') }}

),

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

feature_tiers as (

    select * from {{ ref('feature_tiers') }}

),

-- per indicator: its top and floor scores, and the thresholds of the top score and the one below it
indicator_rubric as (

    select
        indicators.indicator_key,
        indicators.category,
        indicators.weight,
        indicators.value_format,
        indicators.reason_template,
        indicators.reason_template_ja,
        indicators.display_order,
        max(thresholds.score) as top_score,
        min(thresholds.score) as floor_score
    from indicators
    inner join thresholds
        on indicators.indicator_key = thresholds.indicator_key
    group by 1, 2, 3, 4, 5, 6, 7

),

threshold_roles as (

    select
        thresholds.*,
        rank() over (partition by thresholds.indicator_key order by thresholds.score desc) as score_rank
    from thresholds
    where thresholds.min_value is not null

),

measured_thresholds as (

    select
        measures.company_id,
        measures.score_date,
        threshold_roles.indicator_key,
        threshold_roles.score,
        threshold_roles.score_rank,
        threshold_roles.measure,
        threshold_roles.window_days,
        threshold_roles.min_value,
        measures.measure_value
    from threshold_roles
    inner join measures
        on threshold_roles.measure = measures.measure

),

scored as (

    select
        measured_thresholds.company_id,
        measured_thresholds.score_date,
        measured_thresholds.indicator_key,
        max(measured_thresholds.score) filter (
            where measured_thresholds.measure_value >= measured_thresholds.min_value
        ) as reached_score,
        -- the values and thresholds the words quote: the top score's, and the next score's
        max(measured_thresholds.measure_value) filter (where measured_thresholds.score_rank = 1) as top_value,
        max(measured_thresholds.window_days) filter (where measured_thresholds.score_rank = 1) as top_window_days,
        max(measured_thresholds.min_value) filter (where measured_thresholds.score_rank = 1) as top_min_value,
        max(measured_thresholds.measure_value) filter (where measured_thresholds.score_rank = 2) as next_value,
        max(measured_thresholds.window_days) filter (where measured_thresholds.score_rank = 2) as next_window_days,
        max(measured_thresholds.min_value) filter (where measured_thresholds.score_rank = 2) as next_min_value
    from measured_thresholds
    group by 1, 2, 3
    having count(measured_thresholds.measure_value) > 0

),

with_scores as (

    select
        scored.*,
        indicator_rubric.category,
        indicator_rubric.weight,
        indicator_rubric.value_format,
        indicator_rubric.reason_template,
        indicator_rubric.reason_template_ja,
        indicator_rubric.display_order,
        indicator_rubric.top_score,
        coalesce(scored.reached_score, indicator_rubric.floor_score) as score
    from scored
    inner join indicator_rubric
        on scored.indicator_key = indicator_rubric.indicator_key

),

-- numbers as the words show them: 'number' plain, 'percent' of a fraction, 'ratio' with two decimals,
-- 'feature_tier' as the tier's name
formatted as (

    select
        with_scores.*,
        {%- for column in ['top_value', 'top_min_value', 'next_value', 'next_min_value'] %}
        case with_scores.value_format
            when 'percent' then cast(trim_scale(round(with_scores.{{ column }} * 100, 1)) as text) || '%'
            when 'ratio' then cast(round(with_scores.{{ column }}, 2) as text)
            when 'feature_tier' then (
                select feature_tiers.feature_tier
                from feature_tiers
                where feature_tiers.feature_tier_rank = with_scores.{{ column }}
            )
            else cast(trim_scale(with_scores.{{ column }}) as text)
        end as {{ column }}_text{{ ',' if not loop.last }}
        {%- endfor %}
    from with_scores

),

final as (

    select
        cast(company_id as text) as company_id,
        cast(score_date as date) as score_date,
        cast(indicator_key as text) as indicator_key,
        cast(category as text) as category,
        cast(weight as numeric(6, 4)) as weight,
        cast(display_order as integer) as display_order,
        cast(score as integer) as score,
        cast((top_score - score) * weight as numeric(8, 4)) as weighted_shortfall,
        {%- for column, template in [('reason', 'reason_template'), ('reason_ja', 'reason_template_ja')] %}
        cast(
            replace(replace(replace(replace(replace(replace({{ template }},
                '{yellow_value}', coalesce(next_value_text, '?')),
                '{yellow_window}', coalesce(cast(next_window_days as text), '?')),
                '{yellow}', coalesce(next_min_value_text, '?')),
                '{value}', coalesce(top_value_text, '?')),
                '{window}', coalesce(cast(top_window_days as text), '?')),
                '{green}', coalesce(top_min_value_text, '?'))
            as text
        ) as {{ column }},
        {%- endfor %}
        {{ computed_at() }} as computed_at
    from formatted

)

select * from final
