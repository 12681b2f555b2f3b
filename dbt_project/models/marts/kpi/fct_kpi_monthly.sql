-- One row per closed month and KPI of the KPI tree: the actual beside the target of the month's programme
-- year. The programme year counts from var kpi_programme_start (the first month of Year 1): a month before
-- it has no target. A target row of the kpi_targets seed holds from its programme year until a later
-- year's row replaces it (so Year 3's targets stay after Year 3); a row without a year is the standing
-- target, used when no year's row applies.

with

actuals as (

    select * from {{ ref('int_kpi_actuals_monthly') }}

),

targets as (

    select * from {{ ref('kpi_targets') }}

),

programme as (

    select cast('{{ var("kpi_programme_start") }}' as date) as programme_start

),

kpis as (

    -- the KPI's words, which every target row of a KPI repeats
    select distinct
        kpi_key,
        kpi_name,
        kpi_branch,
        unit,
        direction,
        description
    from targets

),

months_in_programme as (

    select
        actuals.*,
        case
            when actuals.month_start >= programme.programme_start then
                cast(floor((
                    (extract(year from actuals.month_start) - extract(year from programme.programme_start)) * 12
                    + extract(month from actuals.month_start) - extract(month from programme.programme_start)
                ) / 12) as integer) + 1
        end as programme_year
    from actuals
    cross join programme

),

target_candidates as (

    -- the targets that could apply, the latest programme year first and the standing target last
    select
        months_in_programme.month_start,
        months_in_programme.kpi_key,
        targets.target_value,
        row_number() over (
            partition by months_in_programme.month_start, months_in_programme.kpi_key
            order by targets.programme_year desc nulls last
        ) as preference
    from months_in_programme
    inner join targets
        on months_in_programme.kpi_key = targets.kpi_key
        and (targets.programme_year is null or targets.programme_year <= months_in_programme.programme_year)
    where months_in_programme.programme_year is not null

),

final as (

    select
        cast({{ generate_surrogate_key(['months_in_programme.month_start', 'months_in_programme.kpi_key']) }} as text)
            as kpi_month_id,
        cast(months_in_programme.month_start as date) as month_start,
        cast(months_in_programme.kpi_key as text) as kpi_key,
        cast(kpis.kpi_name as text) as kpi_name,
        cast(kpis.kpi_branch as text) as kpi_branch,
        cast(kpis.unit as text) as unit,
        cast(kpis.direction as text) as direction,
        cast(months_in_programme.programme_year as integer) as programme_year,
        cast(months_in_programme.actual as numeric(18,6)) as actual,
        cast(target_candidates.target_value as numeric(18,6)) as target,
        cast(case
            when kpis.direction = 'at_least' then months_in_programme.actual >= target_candidates.target_value
            when kpis.direction = 'at_most' then months_in_programme.actual <= target_candidates.target_value
        end as boolean) as is_on_target,
        cast(months_in_programme.numerator as numeric(18,2)) as numerator,
        cast(months_in_programme.denominator as numeric(18,2)) as denominator,
        cast(months_in_programme.measured_on as date) as measured_on,
        cast(kpis.description as text) as description,
        cast({{ run_date() }} as date) as computed_for_run_date
    from months_in_programme
    inner join kpis
        on months_in_programme.kpi_key = kpis.kpi_key
    left join target_candidates
        on months_in_programme.month_start = target_candidates.month_start
        and months_in_programme.kpi_key = target_candidates.kpi_key
        and target_candidates.preference = 1

)

select * from final
