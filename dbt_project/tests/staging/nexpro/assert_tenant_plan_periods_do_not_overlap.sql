-- A tenant is on one plan at a time: no period may end before it starts, and no two periods of the same
-- tenant may share a day. Otherwise int_tenant_daily_activity_aggregated would see two sets of limits.

with

tenant_plans as (

    select * from {{ ref('stg_nexpro__tenant_plans') }}

),

backwards_periods as (

    select
        tenant_id,
        tenant_plan_id,
        cast(null as bigint) as overlapping_tenant_plan_id,
        'ends before it starts' as problem
    from tenant_plans
    where plan_ended_date < plan_started_date

),

overlapping_periods as (

    select
        earlier_plan.tenant_id,
        earlier_plan.tenant_plan_id,
        later_plan.tenant_plan_id as overlapping_tenant_plan_id,
        'overlaps another period of the same tenant' as problem
    from tenant_plans as earlier_plan
    inner join tenant_plans as later_plan
        on earlier_plan.tenant_id = later_plan.tenant_id
        and earlier_plan.tenant_plan_id < later_plan.tenant_plan_id
        and earlier_plan.plan_started_date < coalesce(later_plan.plan_ended_date, cast('9999-12-31' as date))
        and later_plan.plan_started_date < coalesce(earlier_plan.plan_ended_date, cast('9999-12-31' as date))

),

final as (

    select * from backwards_periods
    union all
    select * from overlapping_periods

)

select * from final
