with

source as (

    select * from {{ source('salesforce', 'task') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as task_id,
        coalesce(accountid, whatid) as account_id,
        whoid as contact_id,
        ownerid as owner_user_id,

        -- attributes
        subject as subject,
        type as activity_type,
        status as task_status,
        priority as priority,

        -- flags
        isclosed as is_completed,

        -- dates
        activitydate as activity_date,
        completeddatetime as completed_at,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
