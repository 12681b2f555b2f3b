with

source as (

    select * from {{ source('nexpro', 'tenants') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(tenant_id as bigint) as tenant_id,
        cast(plan_id as integer) as current_plan_id,
        tenant_code,

        -- attributes
        company_name,
        industry,
        lower(trim(status)) as tenant_status,

        -- flags
        lower(trim(status)) = 'cancelled' as is_cancelled,

        -- dates (business dates, Asia/Tokyo)
        contract_started_on as contract_started_date,
        cancelled_on as cancelled_date,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
