with

source as (

    select * from {{ source('nexpro', 'users') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(user_id as bigint) as user_id,
        cast(tenant_id as bigint) as tenant_id,

        -- attributes
        lower(trim(email)) as email,
        display_name,
        lower(trim(role)) as user_role,

        -- flags
        is_active,
        lower(trim(role)) in ('owner', 'admin') as is_admin,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
