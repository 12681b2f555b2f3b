with

source as (

    select * from {{ source('nexpro', 'viewing_sessions') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(viewing_session_id as bigint) as viewing_session_id,
        cast(registration_id as bigint) as registration_id,
        cast(webinar_id as bigint) as webinar_id,
        cast(tenant_id as bigint) as tenant_id,

        -- attributes
        lower(trim(device)) as device,

        -- measures
        cast(watch_seconds as integer) as watch_seconds,
        cast(watch_seconds as numeric) / 60 as watch_minutes,

        -- dates (business dates, Asia/Tokyo)
        {{ to_business_date('joined_at') }} as joined_date,

        -- timestamps (UTC)
        joined_at,
        left_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
