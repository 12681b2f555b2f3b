with

source as (

    select * from {{ source('nexpro', 'nps_responses') }}
    where _deleted_at is null  -- deleted in the source: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(nps_response_id as bigint) as nps_response_id,
        cast(tenant_id as bigint) as tenant_id,
        cast(user_id as bigint) as user_id,

        -- measures
        cast(score as integer) as nps_score,

        -- attributes: promoters 9-10, passives 7-8, detractors 0-6
        case
            when score >= 9 then 'promoter'
            when score >= 7 then 'passive'
            else 'detractor'
        end as nps_category,
        comment as nps_comment,

        -- dates (business dates, Asia/Tokyo)
        {{ to_business_date('responded_at') }} as responded_date,

        -- timestamps (UTC)
        responded_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
