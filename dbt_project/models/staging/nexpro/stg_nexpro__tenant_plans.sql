with

source as (

    select * from {{ source('nexpro', 'tenant_plans') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(tenant_plan_id as bigint) as tenant_plan_id,
        cast(tenant_id as bigint) as tenant_id,
        cast(plan_id as integer) as plan_id,

        -- dates: the plan is in force on [plan_started_date, plan_ended_date)
        started_on as plan_started_date,
        ended_on as plan_ended_date,

        -- flags
        ended_on is null as is_open_ended,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
