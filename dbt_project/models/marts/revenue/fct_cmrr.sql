-- Contracted MRR (CMRR, 既決MRR) per company as of run_date: the MRR of the last closed month, plus won
-- deals whose service has not reached that MRR yet, minus the MRR of companies that gave notice (a lost
-- renewal) and still had MRR in that month. Deals come from Salesforce; amounts there are annual (ACV),
-- so a deal adds Amount / 12 a month.

with

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

accounts as (

    select * from {{ ref('int_accounts_matched_to_tenants') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

as_of as (

    select
        {{ run_date() }} as as_of_date,
        cast(date_trunc('month', {{ run_date() }}) - interval '1 month' as date) as mrr_month_start,
        cast(date_trunc('month', {{ run_date() }}) as date) as open_month_start

),

mrr_now as (

    select
        company_months.company_id,
        company_months.closing_mrr as mrr
    from company_months
    inner join as_of
        on company_months.month_start = as_of.mrr_month_start

),

company_opportunities as (

    -- A duplicate account's deals count for the company its oldest twin stands for.
    select
        companies.company_id,
        opportunities.*,
        coalesce(opportunities.service_start_date, opportunities.close_date) as revenue_start_date
    from opportunities
    inner join accounts
        on opportunities.account_id = accounts.account_id
    inner join companies
        on coalesce(accounts.kept_account_id, accounts.account_id) = companies.account_id
    cross join as_of
    where opportunities.close_date <= as_of.as_of_date

),

won_not_started as (

    -- New business, upsells and cross-sells won whose service starts after the last closed month (a won
    -- renewal continues MRR that is already counted).
    select
        company_opportunities.company_id,
        count(*) as won_not_started_deals,
        sum(company_opportunities.amount_jpy) / 12 as won_not_started_mrr
    from company_opportunities
    cross join as_of
    where company_opportunities.is_won
        and company_opportunities.opportunity_type <> 'Renewal'
        and company_opportunities.revenue_start_date >= as_of.open_month_start
    group by company_opportunities.company_id

),

notified_cancellations as (

    -- A renewal lost for a date from the last closed month on: the company leaves at that renewal, and
    -- the MRR it still had in the last closed month stops.
    select distinct company_opportunities.company_id
    from company_opportunities
    cross join as_of
    where company_opportunities.is_closed
        and not company_opportunities.is_won
        and company_opportunities.opportunity_type = 'Renewal'
        and company_opportunities.revenue_start_date >= as_of.mrr_month_start

),

combined as (

    select
        coalesce(mrr_now.company_id, won_not_started.company_id) as company_id,
        coalesce(mrr_now.mrr, 0) as mrr,
        coalesce(won_not_started.won_not_started_deals, 0) as won_not_started_deals,
        coalesce(won_not_started.won_not_started_mrr, 0) as won_not_started_mrr,
        case when notified_cancellations.company_id is not null then coalesce(mrr_now.mrr, 0) else 0 end
            as scheduled_cancellation_mrr
    from mrr_now
    full outer join won_not_started
        on mrr_now.company_id = won_not_started.company_id
    left join notified_cancellations
        on coalesce(mrr_now.company_id, won_not_started.company_id) = notified_cancellations.company_id

),

final as (

    select
        combined.company_id,
        as_of.as_of_date,
        as_of.mrr_month_start,
        cast(combined.mrr as numeric(18,2)) as mrr,
        cast(combined.won_not_started_deals as integer) as won_not_started_deals,
        cast(round(combined.won_not_started_mrr, 2) as numeric(18,2)) as won_not_started_mrr,
        cast(combined.scheduled_cancellation_mrr as numeric(18,2)) as scheduled_cancellation_mrr,
        cast(round(combined.mrr + combined.won_not_started_mrr - combined.scheduled_cancellation_mrr, 2)
            as numeric(18,2)) as cmrr
    from combined
    cross join as_of
    where combined.mrr > 0 or combined.won_not_started_mrr <> 0

)

select * from final
