-- The status bands (seed health_status_bands) must be ordered and closed: a better band (higher
-- band_order) needs a higher min_total_score, and the lowest band starts at or below the lowest possible
-- total (the lowest score of health_thresholds) so that every total has a status; no band may start
-- above the highest possible total. Fails with the band and the fix.

with

bands as (

    select * from {{ ref('health_status_bands') }}

),

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

score_range as (

    select min(score) as lowest_score, max(score) as highest_score from thresholds

),

problems as (

    select
        better.health_status,
        'health_status_bands.csv: ' || better.health_status || ' (band_order ' || better.band_order
            || ') starts at ' || better.min_total_score || ', not above ' || worse.health_status
            || ' (band_order ' || worse.band_order || ') at ' || worse.min_total_score
            || '; a better band needs a higher min_total_score' as problem
    from bands as better
    inner join bands as worse
        on better.band_order > worse.band_order
    where better.min_total_score <= worse.min_total_score

    union all

    select
        bands.health_status,
        'health_status_bands.csv: the lowest band ' || bands.health_status || ' starts at ' || bands.min_total_score
            || ', above the lowest possible total ' || score_range.lowest_score
            || ', so lower totals get no status; set its min_total_score to ' || score_range.lowest_score as problem
    from bands
    cross join score_range
    where bands.min_total_score = (select min(min_total_score) from bands)
        and bands.min_total_score > score_range.lowest_score

    union all

    select
        bands.health_status,
        'health_status_bands.csv: ' || bands.health_status || ' starts at ' || bands.min_total_score
            || ', above the highest possible total ' || score_range.highest_score
            || '; no company can reach it' as problem
    from bands
    cross join score_range
    where bands.min_total_score > score_range.highest_score

),

final as (

    select * from problems

)

select * from final
