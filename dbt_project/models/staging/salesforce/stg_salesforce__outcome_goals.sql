with

source as (

    select * from {{ source('salesforce', 'outcome_goal__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as outcome_goal_id,
        account__c as account_id,
        ownerid as owner_user_id,

        -- attributes
        name as outcome_goal_name,
        goal_type__c as goal_type,
        target_value__c as target_value,
        success_criterion__c as success_criterion,
        measurement_method__c as measurement_method,
        status__c as goal_status,

        -- flags
        status__c = 'Active' as is_active,

        -- dates
        start_date__c as start_date,
        end_date__c as end_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
