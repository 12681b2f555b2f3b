-- Every record the identity model could not reconcile, with the reason and the fix: the reconciliation
-- the CS team used to do by hand in spreadsheets. One row per (issue, record).

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
        account_id as record_id,
        account_name as company_name,
        cast(null as text) as key_value,
        cast(null as text) as related_record_id,
        'Account has no Board_Client_Id__c, so its billing cannot be linked: '
        || 'set it to the company''s board client id' as reason
    from accounts
    where board_client_key is null

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

),

final as (

    select
        {{ generate_surrogate_key(['issue_type', 'source_system', 'record_id']) }} as issue_id,
        issues.*,
        {{ run_date() }} as as_of_date
    from issues

)

select * from final
