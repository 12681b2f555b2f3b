with

source as (

    select * from {{ source('salesforce', 'event') }}
    where not isdeleted and _deleted_at is null  -- in the recycle bin or gone: kept in raw, left out here

),

final as (

    select
        -- ids
        id as event_id,
        coalesce(accountid, whatid) as account_id,
        whoid as contact_id,
        ownerid as owner_user_id,

        -- attributes
        subject as subject,
        type as activity_type,
        durationinminutes as duration_minutes,

        -- flags
        upper(type) = 'QBR' as is_qbr,

        -- dates and times
        coalesce(activitydate, {{ to_business_date('startdatetime') }}) as activity_date,
        startdatetime as started_at,
        enddatetime as ended_at,

        -- timestamps (UTC)
        createddate as created_at,
        lastmodifieddate as updated_at,
        systemmodstamp as system_modstamp,
        _loaded_at as loaded_at

    from source

)

select * from final
