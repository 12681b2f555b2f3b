with

source as (

    select * from {{ source('nexpro', 'webinars') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(webinar_id as bigint) as webinar_id,
        cast(tenant_id as bigint) as tenant_id,
        cast(host_user_id as bigint) as host_user_id,

        -- attributes
        title as webinar_title,
        lower(trim(webinar_type)) as webinar_type,
        lower(trim(status)) as webinar_status,

        -- flags
        lower(trim(status)) = 'held' as is_held,

        -- measures
        {{ dbt.datediff('started_at', 'ended_at', 'second') }} / 60.0 as duration_minutes,

        -- dates (business dates, Asia/Tokyo); a held webinar counts on the day it started
        {{ to_business_date('scheduled_start_at') }} as scheduled_start_date,
        case
            when lower(trim(status)) = 'held'
                then {{ to_business_date('coalesce(started_at, scheduled_start_at)') }}
        end as held_date,

        -- timestamps (UTC)
        scheduled_start_at,
        started_at,
        ended_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
