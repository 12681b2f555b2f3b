-- The rubric's weights (seed health_indicators) must add up to 1, or the total is not a weighted mean of
-- the scores. Fails with one row per indicator, its weight and the sum, saying what to change.

with

indicators as (

    select * from {{ ref('health_indicators') }}

),

total as (

    select sum(weight) as weight_sum from indicators

),

final as (

    select
        indicators.indicator_key,
        indicators.weight,
        total.weight_sum,
        'health_indicators.csv: the weights add up to ' || total.weight_sum
            || ', not 1; change weights (this row has ' || indicators.weight || ') so that they add up to 1'
            as problem
    from indicators
    cross join total
    where total.weight_sum <> 1
        or indicators.weight < 0

)

select * from final
