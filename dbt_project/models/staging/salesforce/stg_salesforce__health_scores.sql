with

source as (

    select * from {{ source('salesforce', 'health_score__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as health_score_id,
        account__c as account_id,
        health_score_key__c as health_score_key,

        -- measures
        total_score__c as total_score,
        usage_score__c as usage_score,
        outcome_score__c as outcome_score,
        relationship_score__c as relationship_score,
        contract_score__c as contract_score,
        status__c as health_status,

        -- dates
        score_date__c as score_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
