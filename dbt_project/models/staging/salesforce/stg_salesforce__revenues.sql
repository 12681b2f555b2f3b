with

source as (

    select * from {{ source('salesforce', 'revenue__c') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as revenue_id,
        account__c as account_id,
        revenue_key__c as revenue_key,

        -- measures
        mrr__c as mrr_jpy,
        invoiced_amount__c as invoiced_amount_jpy,
        plan__c as plan_name,

        -- dates
        month__c as revenue_month,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
