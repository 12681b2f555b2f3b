-- One row per company, with its key in every system. Salesforce is the source of truth for identity:
-- an Account's Nexpro_Tenant_Id__c says which product tenant it is. Records no key joins still become
-- companies (Salesforce-only or Nexpro-only) so nothing silently vanishes; dq_identity_issues lists why.

with

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

ranked_accounts as (

    -- Several accounts may carry the same tenant key (a duplicate). The oldest stands for the company;
    -- the others are duplicates to merge in Salesforce.
    select
        accounts.*,
        case
            when nexpro_tenant_id is not null
                then row_number() over (partition by nexpro_tenant_id order by created_at, account_id)
            else 1
        end as tenant_key_rank
    from accounts

),

company_accounts as (

    select
        ranked_accounts.*,
        tenants.tenant_id as matched_tenant_id
    from ranked_accounts
    left join tenants
        on ranked_accounts.nexpro_tenant_id = tenants.tenant_id
    where ranked_accounts.tenant_key_rank = 1

),

companies_in_salesforce as (

    select
        case
            when matched_tenant_id is not null then 'nexpro:' || matched_tenant_id
            else 'salesforce:' || account_id
        end as company_id,
        account_name as company_name,
        account_id,
        matched_tenant_id as tenant_id,
        board_client_id,
        owner_user_id as csm_user_id,
        tier,
        case when matched_tenant_id is not null then 'matched' else 'salesforce_only' end as match_status
    from company_accounts

),

tenants_without_account as (

    select
        'nexpro:' || tenants.tenant_id as company_id,
        tenants.company_name,
        cast(null as text) as account_id,
        tenants.tenant_id,
        cast(null as bigint) as board_client_id,
        cast(null as text) as csm_user_id,
        cast(null as text) as tier,
        'nexpro_only' as match_status
    from tenants
    where not exists (
        select from accounts where accounts.nexpro_tenant_id = tenants.tenant_id
    )

),

final as (

    select * from companies_in_salesforce
    union all
    select * from tenants_without_account

)

select * from final
