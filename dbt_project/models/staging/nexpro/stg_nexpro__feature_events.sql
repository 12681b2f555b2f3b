with

source as (

    select * from {{ source('nexpro', 'feature_events') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(feature_event_id as bigint) as feature_event_id,
        cast(tenant_id as bigint) as tenant_id,
        cast(user_id as bigint) as user_id,
        lower(trim(feature_key)) as feature_key,

        -- dates (business dates, Asia/Tokyo)
        {{ to_business_date('occurred_at') }} as occurred_date,

        -- timestamps (UTC)
        occurred_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
