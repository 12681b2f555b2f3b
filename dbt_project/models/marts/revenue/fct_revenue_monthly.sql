-- One row per month through the last closed month: customers and MRR movements summed over companies,
-- and the rates. Monthly rates have the customers with MRR at the start of the month as their base
-- (S = opening MRR); trailing-twelve-month rates have the customers with MRR twelve months earlier.
-- NRR = 1 - gross churn rate + expansion rate, monthly and over twelve months.

with

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

monthly as (

    select
        month_start,
        count(*) filter (where opening_mrr > 0) as customers_at_start,
        count(*) filter (where churn_mrr > 0) as customers_lost,
        count(*) filter (where new_mrr > 0) as customers_new,
        count(*) filter (where reactivation_mrr > 0) as customers_reactivated,
        count(*) filter (where closing_mrr > 0) as customers_at_end,
        sum(opening_mrr) as opening_mrr,
        sum(new_mrr) as new_mrr,
        sum(reactivation_mrr) as reactivation_mrr,
        sum(expansion_mrr) as expansion_mrr,
        sum(upsell_mrr) as upsell_mrr,
        sum(cross_sell_mrr) as cross_sell_mrr,
        sum(contraction_mrr) as contraction_mrr,
        sum(churn_mrr) as churn_mrr,
        sum(closing_mrr) as closing_mrr,
        sum(paid_services_revenue) as paid_services_revenue,
        count(*) filter (where mrr_12_months_ago > 0) as customers_12_months_ago,
        sum(mrr_12_months_ago) as mrr_12_months_ago,
        sum(closing_mrr) filter (where mrr_12_months_ago > 0) as cohort_mrr_t12m,
        sum(expansion_mrr_t12m) as expansion_mrr_t12m,
        sum(gross_churn_mrr_t12m) as gross_churn_mrr_t12m
    from company_months
    group by month_start

),

with_trailing as (

    -- LTV divides by the revenue churn rate of the trailing twelve months (sum of churn over sum of S),
    -- so one quiet month does not make it infinite. Every month has rows: company spines are gap-free.
    select
        monthly.*,
        sum(churn_mrr) over trailing_year / nullif(sum(opening_mrr) over trailing_year, 0)
            as revenue_churn_rate_12m_avg
    from monthly
    window trailing_year as (order by month_start rows between 11 preceding and current row)

),

final as (

    select
        month_start,
        cast(customers_at_start as integer) as customers_at_start,
        cast(customers_lost as integer) as customers_lost,
        cast(customers_new as integer) as customers_new,
        cast(customers_reactivated as integer) as customers_reactivated,
        cast(customers_at_end as integer) as customers_at_end,
        cast(opening_mrr as numeric(18,2)) as opening_mrr,
        cast(new_mrr as numeric(18,2)) as new_mrr,
        cast(reactivation_mrr as numeric(18,2)) as reactivation_mrr,
        cast(expansion_mrr as numeric(18,2)) as expansion_mrr,
        cast(upsell_mrr as numeric(18,2)) as upsell_mrr,
        cast(cross_sell_mrr as numeric(18,2)) as cross_sell_mrr,
        cast(contraction_mrr as numeric(18,2)) as contraction_mrr,
        cast(churn_mrr as numeric(18,2)) as churn_mrr,
        cast(closing_mrr as numeric(18,2)) as closing_mrr,
        cast(round((churn_mrr + contraction_mrr) / nullif(opening_mrr, 0), 6) as numeric(12,6)) as gross_churn_rate,
        cast(round(expansion_mrr / nullif(opening_mrr, 0), 6) as numeric(12,6)) as expansion_rate,
        cast(round((opening_mrr + expansion_mrr - contraction_mrr - churn_mrr) / nullif(opening_mrr, 0), 6)
            as numeric(12,6)) as nrr,
        cast(round((opening_mrr - contraction_mrr - churn_mrr) / nullif(opening_mrr, 0), 6) as numeric(12,6)) as grr,
        cast(round(customers_lost / nullif(customers_at_start, 0)::numeric, 6) as numeric(12,6)) as customer_churn_rate,
        cast(round(churn_mrr / nullif(opening_mrr, 0), 6) as numeric(12,6)) as revenue_churn_rate,
        cast(round(revenue_churn_rate_12m_avg, 6) as numeric(12,6)) as revenue_churn_rate_12m_avg,
        cast(round(closing_mrr / nullif(customers_at_end, 0), 2) as numeric(18,2)) as arpa,
        -- ARPA x one payment a month x expected lifetime in months (1 / monthly revenue churn rate)
        cast(round({{ customer_lifetime_value(
            'closing_mrr / nullif(customers_at_end, 0)', 1, '1 / nullif(revenue_churn_rate_12m_avg, 0)'
        ) }}, 2) as numeric(18,2)) as ltv,
        cast(paid_services_revenue as numeric(18,2)) as paid_services_revenue,
        cast(customers_12_months_ago as integer) as customers_12_months_ago,
        cast(mrr_12_months_ago as numeric(18,2)) as mrr_12_months_ago,
        cast(expansion_mrr_t12m as numeric(18,2)) as expansion_mrr_t12m,
        cast(gross_churn_mrr_t12m as numeric(18,2)) as gross_churn_mrr_t12m,
        cast(round(cohort_mrr_t12m / nullif(mrr_12_months_ago, 0), 6) as numeric(12,6)) as nrr_t12m,
        cast(round((mrr_12_months_ago - gross_churn_mrr_t12m) / nullif(mrr_12_months_ago, 0), 6) as numeric(12,6))
            as grr_t12m,
        cast(round(gross_churn_mrr_t12m / nullif(mrr_12_months_ago, 0), 6) as numeric(12,6)) as gross_churn_rate_t12m,
        cast(round(expansion_mrr_t12m / nullif(mrr_12_months_ago, 0), 6) as numeric(12,6)) as expansion_rate_t12m,
        {{ run_date() }} as computed_for_run_date
    from with_trailing

)

select * from final
