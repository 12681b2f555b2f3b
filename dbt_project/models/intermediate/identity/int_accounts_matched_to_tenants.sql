-- One row per live Salesforce Account with the Nexpro tenant and the board client its keys find (if any),
-- and its rank among the accounts that carry the same key: the oldest (created first, then lowest Id) is
-- rank 1 and stands for the company; a higher rank is a duplicate to merge in Salesforce.

with

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

board_clients as (

    select * from {{ ref('stg_board__clients') }}

),

final as (

    select
        accounts.*,
        tenants.tenant_id as matched_tenant_id,
        case
            when accounts.nexpro_tenant_id is null then 1
            else row_number() over (
                partition by accounts.nexpro_tenant_id order by accounts.created_at, accounts.account_id
            )
        end as tenant_key_rank,
        case
            when accounts.nexpro_tenant_id is not null then first_value(accounts.account_id) over (
                partition by accounts.nexpro_tenant_id order by accounts.created_at, accounts.account_id
            )
        end as kept_account_id,
        board_clients.client_id as matched_board_client_id,
        case
            when accounts.board_client_id is null then 1
            else row_number() over (
                partition by accounts.board_client_id order by accounts.created_at, accounts.account_id
            )
        end as board_key_rank,
        case
            when accounts.board_client_id is not null then first_value(accounts.account_id) over (
                partition by accounts.board_client_id order by accounts.created_at, accounts.account_id
            )
        end as board_kept_account_id
    from accounts
    left join tenants
        on accounts.nexpro_tenant_id = tenants.tenant_id
    left join board_clients
        on accounts.board_client_id = board_clients.client_id

)

select * from final
