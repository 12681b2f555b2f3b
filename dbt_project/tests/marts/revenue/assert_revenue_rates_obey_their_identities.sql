-- Every month of fct_revenue_monthly, within rounding (each rate is rounded to six decimals):
-- the totals add up like each company's (opening + new + reactivation + expansion - contraction - churn
-- = closing), NRR = 1 - gross churn + expansion and GRR = 1 - gross churn, monthly and over twelve
-- months; and the totals equal the sums of fct_mrr_company_monthly.

with

revenue as (

    select * from {{ ref('fct_revenue_monthly') }}

),

company_sums as (

    select
        month_start,
        sum(opening_mrr) as opening_mrr,
        sum(closing_mrr) as closing_mrr,
        sum(mrr_12_months_ago) as mrr_12_months_ago
    from {{ ref('fct_mrr_company_monthly') }}
    group by month_start

)

select revenue.*
from revenue
left join company_sums
    on revenue.month_start = company_sums.month_start
where revenue.opening_mrr + revenue.new_mrr + revenue.reactivation_mrr + revenue.expansion_mrr
        - revenue.contraction_mrr - revenue.churn_mrr <> revenue.closing_mrr
    or company_sums.month_start is null
    or revenue.opening_mrr <> company_sums.opening_mrr
    or revenue.closing_mrr <> company_sums.closing_mrr
    or revenue.mrr_12_months_ago <> company_sums.mrr_12_months_ago
    or abs(revenue.nrr - (1 - revenue.gross_churn_rate + revenue.expansion_rate)) > 0.000002
    or abs(revenue.grr - (1 - revenue.gross_churn_rate)) > 0.000001
    or abs(revenue.nrr_t12m - (1 - revenue.gross_churn_rate_t12m + revenue.expansion_rate_t12m)) > 0.000002
    or abs(revenue.grr_t12m - (1 - revenue.gross_churn_rate_t12m)) > 0.000001
    -- a rate is null exactly when its base is zero
    or ((revenue.opening_mrr = 0) <> (revenue.nrr is null))
    or ((revenue.mrr_12_months_ago = 0) <> (revenue.nrr_t12m is null))
