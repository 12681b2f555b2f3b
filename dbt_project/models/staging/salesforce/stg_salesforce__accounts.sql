with

source as (

    select * from {{ source('salesforce', 'account') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as account_id,
        ownerid as owner_user_id,
        nullif(trim(nexpro_tenant_id__c), '') as nexpro_tenant_key,
        case when trim(nexpro_tenant_id__c) ~ '^[0-9]{1,18}$' then cast(trim(nexpro_tenant_id__c) as bigint) end as nexpro_tenant_id,
        nullif(trim(board_client_id__c), '') as board_client_key,
        case when trim(board_client_id__c) ~ '^[0-9]{1,18}$' then cast(trim(board_client_id__c) as bigint) end as board_client_id,

        -- attributes
        name as account_name,
        industry as industry,
        type as account_type,
        numberofemployees as number_of_employees,
        tier__c as tier,
        growth_potential__c as growth_potential,

        -- contract
        contract_start_date__c as contract_start_date,
        renewal_date__c as renewal_date,
        annual_contract_value__c as annual_contract_value_jpy,

        -- health as last written back by the platform
        health_score__c as written_health_score,
        health_status__c as written_health_status,
        health_score_date__c as written_health_score_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
