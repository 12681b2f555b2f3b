-- Every day a tenant is under contract should have a plan in force (stg_nexpro__tenant_plans), or its
-- plan-limit utilisation in fct_tenant_daily_usage is null. A warning: the data is still usable.
{{ config(severity='warn') }}

with

tenant_days as (

    select * from {{ ref('int_tenant_daily_activity_aggregated') }}

),

final as (

    select
        tenant_id,
        min(usage_date) as first_day_without_plan,
        max(usage_date) as last_day_without_plan,
        count(*) as days_without_plan
    from tenant_days
    where is_under_contract
        and plan_id is null
    group by tenant_id

)

select * from final
