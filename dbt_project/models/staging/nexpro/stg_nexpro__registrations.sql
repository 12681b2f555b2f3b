with

source as (

    select * from {{ source('nexpro', 'registrations') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(registration_id as bigint) as registration_id,
        cast(webinar_id as bigint) as webinar_id,
        cast(tenant_id as bigint) as tenant_id,

        -- attributes
        lower(trim(attendee_email)) as attendee_email,

        -- flags
        attended as has_attended,

        -- dates (business dates, Asia/Tokyo)
        {{ to_business_date('registered_at') }} as registered_date,

        -- timestamps (UTC)
        registered_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
