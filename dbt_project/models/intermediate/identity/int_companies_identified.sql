-- One row per company, with its key in every system. Salesforce is the source of truth for identity:
-- an Account's Nexpro_Tenant_Id__c says which product tenant it is. Records no key joins still become
-- companies (Salesforce-only or Nexpro-only) so nothing silently vanishes; dq_identity_issues lists why.

with

matched_accounts as (

    select * from {{ ref('int_accounts_matched_to_tenants') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

companies_in_salesforce as (

    -- Duplicates (a higher rank for the same tenant key) make no company of their own.
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
    from matched_accounts
    where tenant_key_rank = 1

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
        select from matched_accounts where matched_accounts.matched_tenant_id = tenants.tenant_id
    )

),

final as (

    select * from companies_in_salesforce
    union all
    select * from tenants_without_account

)

select * from final
