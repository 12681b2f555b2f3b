-- Every record the identity model could not reconcile across Salesforce, Nexpro and board, with the
-- reason and the fix: the reconciliation the CS team used to do by hand in spreadsheets. One row per
-- (issue, record).

with

accounts as (

    -- Live accounts, each with the tenant its key finds and its rank among accounts sharing that key.
    select * from {{ ref('int_accounts_matched_to_tenants') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

unclaimed_tenants as (

    select * from tenants
    where not exists (
        select from accounts where accounts.nexpro_tenant_id = tenants.tenant_id
    )

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

board_clients as (

    select * from {{ ref('stg_board__clients') }}

),

unclaimed_board_clients as (

    -- board clients no account's key gives to a company: each is a board-only company
    select board_clients.*
    from board_clients
    inner join companies
        on board_clients.client_id = companies.board_client_id
    where companies.match_status = 'board_only'

),

board_name_suggestions as (

    -- An account without a board key and a board client no account claims, with the same company name.
    select
        accounts.account_id,
        unclaimed_board_clients.client_id
    from accounts
    inner join unclaimed_board_clients
        on lower(trim(accounts.account_name)) = lower(trim(unclaimed_board_clients.client_name))
    where accounts.board_client_key is null

),

name_suggestions as (

    -- An account without a tenant key and a tenant no account claims, with the same company name:
    -- most likely the same company. Suggested, never joined automatically.
    select
        accounts.account_id,
        unclaimed_tenants.tenant_id
    from accounts
    inner join unclaimed_tenants
        on lower(trim(accounts.account_name)) = lower(trim(unclaimed_tenants.company_name))
    where accounts.nexpro_tenant_key is null

),

accounts_without_tenant_key as (

    select
        'account_without_tenant_key' as issue_type,
        'salesforce' as source_system,
        accounts.account_id as record_id,
        accounts.account_name as company_name,
        cast(null as text) as key_value,
        cast(name_suggestions.tenant_id as text) as related_record_id,
        'Account has no Nexpro_Tenant_Id__c, so its product usage cannot be linked: set it to the company''s '
        || 'Nexpro tenant id'
        || coalesce(' (tenant ' || name_suggestions.tenant_id || ' has the same name)', '') as reason
    from accounts
    left join name_suggestions
        on accounts.account_id = name_suggestions.account_id
    where accounts.nexpro_tenant_key is null

),

tenant_keys_not_found as (

    select
        'tenant_key_not_found' as issue_type,
        'salesforce' as source_system,
        account_id as record_id,
        account_name as company_name,
        nexpro_tenant_key as key_value,
        cast(null as text) as related_record_id,
        case
            when nexpro_tenant_id is null
                then 'Nexpro_Tenant_Id__c ''' || nexpro_tenant_key || ''' is not a tenant id (digits only): '
                    || 'correct it'
            else 'Nexpro_Tenant_Id__c ' || nexpro_tenant_key || ' matches no Nexpro tenant: '
                || 'correct the id, or check whether the tenant was removed'
        end as reason
    from accounts
    where nexpro_tenant_key is not null
        and matched_tenant_id is null

),

duplicate_tenant_keys as (

    select
        'duplicate_tenant_key' as issue_type,
        'salesforce' as source_system,
        account_id as record_id,
        account_name as company_name,
        nexpro_tenant_key as key_value,
        kept_account_id as related_record_id,
        'Another account (' || kept_account_id || ', the oldest, used for the company) carries the same '
        || 'Nexpro_Tenant_Id__c ' || nexpro_tenant_key || ': merge the duplicate accounts in Salesforce' as reason
    from accounts
    where tenant_key_rank > 1

),

tenants_without_account as (

    select
        'tenant_without_account' as issue_type,
        'nexpro' as source_system,
        cast(unclaimed_tenants.tenant_id as text) as record_id,
        unclaimed_tenants.company_name,
        cast(unclaimed_tenants.tenant_id as text) as key_value,
        name_suggestions.account_id as related_record_id,
        'No Salesforce Account carries this tenant id, so the company has no CSM or CRM data: '
        || coalesce('set Nexpro_Tenant_Id__c on account ' || name_suggestions.account_id || ' (same name)',
                    'set Nexpro_Tenant_Id__c on its account, or create the account') as reason
    from unclaimed_tenants
    left join name_suggestions
        on unclaimed_tenants.tenant_id = name_suggestions.tenant_id

),

accounts_without_board_key as (

    select
        'account_without_board_key' as issue_type,
        'salesforce' as source_system,
        accounts.account_id as record_id,
        accounts.account_name as company_name,
        cast(null as text) as key_value,
        cast(board_name_suggestions.client_id as text) as related_record_id,
        'Account has no Board_Client_Id__c, so its billing cannot be linked: set it to the company''s '
        || 'board client id'
        || coalesce(' (board client ' || board_name_suggestions.client_id || ' has the same name)', '') as reason
    from accounts
    left join board_name_suggestions
        on accounts.account_id = board_name_suggestions.account_id
    where accounts.board_client_key is null

),

board_keys_not_found as (

    select
        'board_key_not_found' as issue_type,
        'salesforce' as source_system,
        account_id as record_id,
        account_name as company_name,
        board_client_key as key_value,
        cast(null as text) as related_record_id,
        case
            when board_client_id is null
                then 'Board_Client_Id__c ''' || board_client_key || ''' is not a board client id (digits only): '
                    || 'correct it'
            else 'Board_Client_Id__c ' || board_client_key || ' matches no board client: '
                || 'correct the id, or check whether the client was deleted in board'
        end as reason
    from accounts
    where board_client_key is not null
        and matched_board_client_id is null

),

duplicate_board_keys as (

    -- Accounts that are duplicates by tenant key are listed as duplicate_tenant_key already.
    select
        'duplicate_board_key' as issue_type,
        'salesforce' as source_system,
        account_id as record_id,
        account_name as company_name,
        board_client_key as key_value,
        board_kept_account_id as related_record_id,
        'Another account (' || board_kept_account_id || ', the oldest, which gets the billing) carries the same '
        || 'Board_Client_Id__c ' || board_client_key || ': correct the key or merge the accounts in Salesforce'
        as reason
    from accounts
    where board_key_rank > 1
        and tenant_key_rank = 1

),

board_clients_without_account as (

    select
        'board_client_without_account' as issue_type,
        'board' as source_system,
        cast(unclaimed_board_clients.client_id as text) as record_id,
        unclaimed_board_clients.client_name as company_name,
        cast(unclaimed_board_clients.client_id as text) as key_value,
        board_name_suggestions.account_id as related_record_id,
        'No Salesforce Account carries this board client id, so its revenue counts for a board-only company '
        || 'with no CSM: '
        || coalesce('set Board_Client_Id__c on account ' || board_name_suggestions.account_id || ' (same name)',
                    'set Board_Client_Id__c on its account, or create the account') as reason
    from unclaimed_board_clients
    left join board_name_suggestions
        on unclaimed_board_clients.client_id = board_name_suggestions.client_id

),

issues as (

    select * from accounts_without_tenant_key
    union all
    select * from tenant_keys_not_found
    union all
    select * from duplicate_tenant_keys
    union all
    select * from tenants_without_account
    union all
    select * from accounts_without_board_key
    union all
    select * from board_keys_not_found
    union all
    select * from duplicate_board_keys
    union all
    select * from board_clients_without_account

),

final as (

    select
        {{ generate_surrogate_key(['issue_type', 'source_system', 'record_id']) }} as issue_id,
        issues.*,
        {{ run_date() }} as as_of_date
    from issues

)

select * from final
