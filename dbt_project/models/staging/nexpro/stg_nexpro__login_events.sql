with

source as (

    select * from {{ source('nexpro', 'login_events') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(login_event_id as bigint) as login_event_id,
        cast(user_id as bigint) as user_id,
        cast(tenant_id as bigint) as tenant_id,

        -- attributes
        user_agent,

        -- dates (business dates, Asia/Tokyo)
        {{ to_business_date('logged_in_at') }} as logged_in_date,

        -- timestamps (UTC)
        logged_in_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
