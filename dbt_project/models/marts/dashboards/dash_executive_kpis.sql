-- The Executive dashboard's KPI tree: one row per KPI of the kpi_targets seed for the last closed month,
-- with its actual, the target of the month's programme year and whether it is on target. A KPI without an
-- actual that month keeps its row and says why (actual_missing_reason), so the tree never loses a branch.

with

kpis as (

    select * from {{ ref('fct_kpi_monthly') }}

),

targets as (

    select * from {{ ref('kpi_targets') }}

),

revenue as (

    select * from {{ ref('fct_revenue_monthly') }}

),

targets_in_force as (

    select * from {{ ref('int_kpi_targets_in_force') }}

),

last_closed_month as (

    select
        max(month_start) as month_start,
        {{ programme_year('max(month_start)') }} as programme_year
    from revenue

),

-- the KPI's words, which every target row of a KPI repeats
kpi_list as (

    select distinct
        kpi_key,
        kpi_name,
        kpi_branch,
        unit,
        direction
    from targets

),

final as (

    select
        cast(kpi_list.kpi_key as text) as kpi_key,
        cast(kpi_list.kpi_name as text) as kpi_name,
        cast(kpi_list.kpi_branch as text) as kpi_branch,
        cast(kpi_list.unit as text) as unit,
        cast(kpi_list.direction as text) as direction,
        cast(last_closed_month.month_start as date) as month_start,
        cast(last_closed_month.programme_year as integer) as programme_year,
        cast(kpis.actual as numeric(18,6)) as actual,
        cast(coalesce(kpis.target, targets_in_force.target_value) as numeric(18,6)) as target,
        cast(kpis.is_on_target as boolean) as is_on_target,
        cast(kpis.numerator as numeric(18,2)) as numerator,
        cast(kpis.denominator as numeric(18,2)) as denominator,
        cast(kpis.measured_on as date) as measured_on,
        cast(case
            when kpis.actual is not null then null
            when kpis.kpi_key is null then 'not_measured'
            when kpis.kpi_key = 'paid_services_revenue_t12m' then 'needs_twelve_months'
            when kpis.denominator = 0 then 'no_base'
            else 'no_data'
        end as text) as actual_missing_reason,
        cast({{ run_date() }} as date) as as_of_date
    from kpi_list
    cross join last_closed_month
    left join kpis
        on kpi_list.kpi_key = kpis.kpi_key
        and last_closed_month.month_start = kpis.month_start
    left join targets_in_force
        on kpi_list.kpi_key = targets_in_force.kpi_key
        and last_closed_month.programme_year = targets_in_force.programme_year

)

select * from final
