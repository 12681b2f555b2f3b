with

source as (

    select * from {{ source('salesforce', 'opportunity') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as opportunity_id,
        accountid as account_id,
        ownerid as owner_user_id,

        -- attributes
        name as opportunity_name,
        type as opportunity_type,
        stagename as stage_name,
        amount as amount_jpy,
        probability as probability_pct,

        -- flags
        isclosed as is_closed,
        iswon as is_won,

        -- dates
        closedate as close_date,
        -- when the won deal's revenue starts (New: contract start; Renewal: the renewal date; Upsell and
        -- Cross-sell: the change date); for a lost renewal, the renewal date it will not reach
        {{ column_or_null(source('salesforce', 'opportunity'), 'service_start_date__c', 'date') }} as service_start_date,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
