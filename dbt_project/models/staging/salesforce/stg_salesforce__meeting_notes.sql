with

source as (

    select * from {{ source('salesforce', 'meeting_note__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as meeting_note_id,
        account__c as account_id,
        ownerid as owner_user_id,

        -- attributes
        name as meeting_note_name,
        attendees__c as attendees,
        agenda__c as agenda,
        decisions__c as decisions,
        next_action__c as next_action,

        -- dates
        meeting_date__c as meeting_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
