{#
    One row per Salesforce Account and closed month in the var('writeback_revenue_months') months before
    run_date's month: the Revenue__c record (upserted by Revenue_Key__c = '<Account Id>:<YYYY-MM>') with the
    month's MRR from board (fct_mrr_company_monthly), the amount invoiced in it (board invoices dated in the
    month, excluding tax; credit notes net) and the Nexpro plan on the month's last day (null when the usage
    history does not reach back that far). Months before the window keep what was sent for them.
    Columns are named as the Salesforce fields.
#}

with

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

invoices as (

    select * from {{ ref('stg_board__invoices') }}

),

usage as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

plans as (

    select * from {{ ref('stg_nexpro__plans') }}

),

window_months as (

    select
        company_months.company_id,
        companies.account_id,
        companies.tenant_id,
        companies.board_client_id,
        company_months.month_start,
        company_months.closing_mrr
    from company_months
    inner join companies
        on company_months.company_id = companies.company_id
    where companies.account_id is not null
        and company_months.month_start >= {{ dbt.dateadd(
            'month', -1 * (var('writeback_revenue_months') | int), dbt.date_trunc('month', run_date())) }}
        and company_months.month_start < {{ dbt.date_trunc('month', run_date()) }}

),

invoiced as (

    select
        client_id,
        cast(date_trunc('month', invoice_date) as date) as month_start,
        sum(amount_excl_tax_jpy) as invoiced_amount_jpy
    from invoices
    where invoice_date <= {{ run_date() }}
    group by client_id, cast(date_trunc('month', invoice_date) as date)

),

month_end_plans as (

    select
        usage.tenant_id,
        cast(date_trunc('month', usage.usage_date) as date) as month_start,
        plans.plan_name
    from usage
    inner join plans
        on usage.plan_id = plans.plan_id
    where usage.usage_date = cast(date_trunc('month', usage.usage_date) + interval '1 month' - interval '1 day' as date)

),

final as (

    select
        cast(window_months.account_id || ':' || to_char(window_months.month_start, 'YYYY-MM') as text)
            as "Revenue_Key__c",
        cast(window_months.account_id as text) as "Account__c",
        cast(to_char(window_months.month_start, 'YYYY-MM') as text) as "Name",
        cast(window_months.month_start as date) as "Month__c",
        cast(window_months.closing_mrr as numeric(18, 2)) as "MRR__c",
        cast(coalesce(invoiced.invoiced_amount_jpy, 0) as numeric(18, 2)) as "Invoiced_Amount__c",
        cast(month_end_plans.plan_name as text) as "Plan__c"
    from window_months
    left join invoiced
        on window_months.board_client_id = invoiced.client_id
        and window_months.month_start = invoiced.month_start
    left join month_end_plans
        on window_months.tenant_id = month_end_plans.tenant_id
        and window_months.month_start = month_end_plans.month_start

)

select * from final
