-- A higher score must need more: for two thresholds of one indicator on the same measure, the higher
-- score's min_value must be greater (seed health_thresholds). Thresholds on different measures (touchpoints:
-- 2 days in 30 for 3, 1 day in 60 for 2) are not compared. Fails with both rows and the fix.

with

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

final as (

    select
        higher.indicator_key,
        higher.score,
        higher.min_value,
        lower.score as lower_score,
        lower.min_value as lower_min_value,
        'health_thresholds.csv: indicator ' || higher.indicator_key || ' needs ' || higher.min_value
            || ' for score ' || higher.score || ' but ' || lower.min_value || ' for the lower score '
            || lower.score || ' on the same measure ' || higher.measure
            || '; make the higher score''s min_value the greater' as problem
    from thresholds as higher
    inner join thresholds as lower
        on higher.indicator_key = lower.indicator_key
        and higher.measure = lower.measure
        and higher.score > lower.score
    where higher.min_value <= lower.min_value

)

select * from final
