-- One row per company, with its key in every system. Salesforce is the source of truth for identity:
-- an Account's Nexpro_Tenant_Id__c says which product tenant it is, its Board_Client_Id__c which board
-- client. Records no key joins still become companies (Salesforce-only, Nexpro-only or board-only) so
-- nothing silently vanishes; dq_identity_issues lists why. A table: most models join it, and the planner
-- needs its real row count (as a view its estimate is a handful of rows, and day-by-company joins crawl).
{{ config(materialized='table') }}

with

matched_accounts as (

    select * from {{ ref('int_accounts_matched_to_tenants') }}

),

users as (

    select * from {{ ref('stg_salesforce__users') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

board_clients as (

    select * from {{ ref('stg_board__clients') }}

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
        -- a board client belongs to one company: the oldest account whose key names it
        case when board_key_rank = 1 then matched_board_client_id end as board_client_id,
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

board_clients_without_account as (

    select
        'board:' || board_clients.client_id as company_id,
        board_clients.client_name as company_name,
        cast(null as text) as account_id,
        cast(null as bigint) as tenant_id,
        board_clients.client_id as board_client_id,
        cast(null as text) as csm_user_id,
        cast(null as text) as tier,
        'board_only' as match_status
    from board_clients
    where not exists (
        select from companies_in_salesforce where companies_in_salesforce.board_client_id = board_clients.client_id
    )

),

unioned as (

    select * from companies_in_salesforce
    union all
    select * from tenants_without_account
    union all
    select * from board_clients_without_account

),

final as (

    select
        unioned.*,
        users.user_name as csm_name
    from unioned
    left join users
        on unioned.csm_user_id = users.user_id

)

select * from final
