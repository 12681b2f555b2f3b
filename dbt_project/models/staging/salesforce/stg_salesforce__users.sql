with

source as (

    select * from {{ source('salesforce', 'user') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as user_id,
        managerid as manager_user_id,

        -- attributes
        name as user_name,
        firstname as first_name,
        lastname as last_name,
        username as username,
        email as email,
        title as title,
        department as department,

        -- flags
        isactive as is_active,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
