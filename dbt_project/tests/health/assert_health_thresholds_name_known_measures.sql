-- Every threshold compares a measure the health-score inputs provide (macros/health_measures.sql, the
-- measures int_health_measures puts in long form), over the window its name says, if it says one
-- (login_days_30d: window_days 30). A threshold on a misspelt measure would leave its indicator without
-- data. Fails with the row and the measures there are.

with

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

measures as (

    {% for measure in health_measures() -%}
    select '{{ measure }}' as measure{{ ' union all' if not loop.last }}
    {% endfor %}

),

known as (

    select string_agg(measure, ', ' order by measure) as measure_list from measures

),

final as (

    select
        thresholds.indicator_key,
        thresholds.score,
        thresholds.measure,
        thresholds.window_days,
        case
            when not exists (select from measures where measures.measure = thresholds.measure)
                then 'health_thresholds.csv: indicator ' || thresholds.indicator_key || ' score ' || thresholds.score
                    || ' names measure ' || thresholds.measure || ', which is not one of: ' || known.measure_list
            else 'health_thresholds.csv: indicator ' || thresholds.indicator_key || ' score ' || thresholds.score
                || ' says window_days ' || coalesce(cast(thresholds.window_days as text), 'empty') || ' but measure '
                || thresholds.measure || ' covers ' || substring(thresholds.measure from '_([0-9]+)d$')
                || ' days; make them agree'
        end as problem
    from thresholds
    cross join known
    where thresholds.measure is not null
        and (
            not exists (select from measures where measures.measure = thresholds.measure)
            or (
                substring(thresholds.measure from '_([0-9]+)d$') is not null
                and cast(substring(thresholds.measure from '_([0-9]+)d$') as integer)
                    is distinct from thresholds.window_days
            )
        )

)

select * from final
