with

source as (

    select * from {{ source('salesforce', 'usage__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as usage_id,
        account__c as account_id,
        usage_key__c as usage_key,

        -- measures
        login_days_30d__c as login_days_30d,
        webinars_held_30d__c as webinars_held_30d,
        attendees_30d__c as attendees_30d,
        data_transfer_gb__c as data_transfer_gb,

        -- dates
        usage_date__c as usage_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
