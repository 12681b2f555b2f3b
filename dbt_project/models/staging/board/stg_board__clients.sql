with

source as (

    select * from {{ source('board', 'clients') }}
    where _deleted_at is null  -- deleted in board: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(id as bigint) as client_id,
        nullif(trim(custom_no), '') as client_number,

        -- attributes
        name as client_name,
        name_disp as client_display_name,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
