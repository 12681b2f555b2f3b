{#
    One row per Salesforce Account and business date in the var('usage_recompute_days') dates ending on
    run_date: the Usage__c record (upserted by Usage_Key__c = '<Account Id>:<date>') with the tenant's
    trailing-30-day usage from fct_tenant_daily_usage. Those are the dates the usage mart may still correct
    (late-arriving product rows); the write-back sends a past date again only when its values changed.
    Columns are named as the Salesforce fields.
#}

with

usage as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

final as (

    select
        cast(companies.account_id || ':' || to_char(usage.usage_date, 'YYYY-MM-DD') as text) as "Usage_Key__c",
        cast(companies.account_id as text) as "Account__c",
        cast(to_char(usage.usage_date, 'YYYY-MM-DD') as text) as "Name",
        cast(usage.usage_date as date) as "Usage_Date__c",
        cast(usage.login_days_30d as numeric(18, 2)) as "Login_Days_30d__c",
        cast(usage.webinars_held_30d as numeric(18, 2)) as "Webinars_Held_30d__c",
        cast(usage.attendees_30d as numeric(18, 2)) as "Attendees_30d__c",
        -- the tenant's data transfer over the same 30 days, in GB
        cast(usage.gb_transferred_30d as numeric(18, 3)) as "Data_Transfer_GB__c"
    from usage
    inner join companies
        on usage.tenant_id = companies.tenant_id
    where companies.account_id is not null
        and usage.usage_date
            > {{ dbt.dateadd('day', -1 * (var('usage_recompute_days') | int), run_date()) }}
        and usage.usage_date <= {{ run_date() }}

)

select * from final
