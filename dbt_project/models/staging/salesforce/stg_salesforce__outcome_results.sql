with

source as (

    select * from {{ source('salesforce', 'outcome_result__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as outcome_result_id,
        outcome_goal__c as outcome_goal_id,
        account__c as account_id,

        -- measures
        actual_value__c as actual_value,
        achievement_rate__c as achievement_rate_pct,
        comment__c as comment,

        -- dates
        period__c as period_month,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
