-- One row per closed month and KPI of the KPI tree: the actual beside the target in force in the month's
-- programme year (int_kpi_targets_in_force). The programme year counts from var kpi_programme_start (the
-- first month of Year 1): a month before it has no target. A month where the KPI has no actual (nobody was
-- eligible, or not enough history) keeps its row, with the reason and a null is_on_target.

with

actuals as (

    select * from {{ ref('int_kpi_actuals_monthly') }}

),

targets as (

    select * from {{ ref('kpi_targets') }}

),

targets_in_force as (

    select * from {{ ref('int_kpi_targets_in_force') }}

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
        {{ programme_year('actuals.month_start') }} as programme_year
    from actuals

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
        cast(months_in_programme.reason as text) as reason,
        cast(targets_in_force.target_value as numeric(18,6)) as target,
        cast(case
            when kpis.direction = 'at_least' then months_in_programme.actual >= targets_in_force.target_value
            when kpis.direction = 'at_most' then months_in_programme.actual <= targets_in_force.target_value
        end as boolean) as is_on_target,
        cast(months_in_programme.numerator as numeric(18,2)) as numerator,
        cast(months_in_programme.denominator as numeric(18,2)) as denominator,
        cast(months_in_programme.measured_on as date) as measured_on,
        cast(kpis.description as text) as description,
        cast({{ run_date() }} as date) as computed_for_run_date
    from months_in_programme
    inner join kpis
        on months_in_programme.kpi_key = kpis.kpi_key
    left join targets_in_force
        on months_in_programme.programme_year = targets_in_force.programme_year
        and months_in_programme.kpi_key = targets_in_force.kpi_key

)

select * from final
