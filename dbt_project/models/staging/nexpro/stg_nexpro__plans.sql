with

source as (

    select * from {{ source('nexpro', 'plans') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(plan_id as integer) as plan_id,
        plan_code,
        plan_name,

        -- limits
        cast(webinars_per_month_limit as integer) as webinars_per_month_limit,
        cast(attendees_per_webinar_limit as integer) as attendees_per_webinar_limit,
        cast(storage_gb_limit as integer) as storage_gb_limit,

        -- money (JPY, excluding tax)
        cast(monthly_price_jpy as numeric(12, 0)) as monthly_price_jpy,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
