with

source as (

    select * from {{ source('nexpro', 'data_transfer_daily') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        {{ generate_surrogate_key(['tenant_id', 'usage_date']) }} as tenant_usage_day_id,
        cast(tenant_id as bigint) as tenant_id,

        -- dates: already a business date, as the product counts it
        usage_date,

        -- measures
        cast(bytes_transferred as bigint) as bytes_transferred,
        cast(storage_bytes as bigint) as storage_bytes,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
