-- One row per live Salesforce Account: the company its records count for. A duplicate account (a second
-- account with the same tenant key) counts for the company its oldest twin stands for, so its goals,
-- activities, contacts and deals are not lost.

with

accounts as (

    select * from {{ ref('int_accounts_matched_to_tenants') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

final as (

    select
        accounts.account_id,
        companies.company_id
    from accounts
    inner join companies
        on coalesce(accounts.kept_account_id, accounts.account_id) = companies.account_id

)

select * from final
