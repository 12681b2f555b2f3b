with

source as (

    select * from {{ source('salesforce', 'contact') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as contact_id,
        accountid as account_id,
        ownerid as owner_user_id,

        -- attributes
        name as contact_name,
        email as email,
        phone as phone,
        title as title,
        department as department,

        -- flags
        coalesce(key_person__c, false) as is_key_person,
        coalesce(is_active__c, false) as is_active,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
