-- Every indicator of the rubric has exactly one threshold row for each score 3, 2 and 1 (seed
-- health_thresholds): 3 and 2 with a measure and a min_value, 1 (the score when no threshold is reached)
-- with neither; and every threshold row belongs to an indicator of health_indicators. Fails with the bad
-- indicator and score, and the fix.

with

indicators as (

    select * from {{ ref('health_indicators') }}

),

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

expected as (

    select
        indicators.indicator_key,
        scores.score
    from indicators
    cross join (values (3), (2), (1)) as scores (score)

),

problems as (

    select
        expected.indicator_key,
        expected.score,
        'health_thresholds.csv has ' || count(thresholds.score) || ' rows for indicator '
            || expected.indicator_key || ' and score ' || expected.score || '; it needs exactly one' as problem
    from expected
    left join thresholds
        on expected.indicator_key = thresholds.indicator_key
        and expected.score = thresholds.score
    group by expected.indicator_key, expected.score
    having count(thresholds.score) <> 1

    union all

    select
        thresholds.indicator_key,
        thresholds.score,
        'health_thresholds.csv: indicator ' || thresholds.indicator_key || ' score ' || thresholds.score
            || case
                when not exists (select from indicators where indicators.indicator_key = thresholds.indicator_key)
                    then ' names no indicator of health_indicators.csv; add the indicator or remove the row'
                when thresholds.score = 1
                    then ' is the lowest score: leave its measure and min_value empty (it applies when no other threshold is reached)'
                else ' needs a measure and a min_value'
            end as problem
    from thresholds
    where not exists (select from indicators where indicators.indicator_key = thresholds.indicator_key)
        or (thresholds.score = 1 and (thresholds.measure is not null or thresholds.min_value is not null))
        or (thresholds.score <> 1 and (thresholds.measure is null or thresholds.min_value is null))

),

final as (

    select * from problems

)

select * from final
