-- Every company and month: opening + new + reactivation + expansion - contraction - churn = closing;
-- opening is the previous month's closing (0 in the first month); expansion = upsell + cross-sell;
-- plan + option = closing; at most one movement is not zero (so no company is new and churned at once).
-- Returns the rows that break any of these.

with

company_months as (

    select
        *,
        lag(closing_mrr) over (partition by company_id order by month_start) as previous_closing_mrr,
        lag(month_start) over (partition by company_id order by month_start) as previous_month_start
    from {{ ref('fct_mrr_company_monthly') }}

)

select *
from company_months
where opening_mrr + new_mrr + reactivation_mrr + expansion_mrr - contraction_mrr - churn_mrr <> closing_mrr
    or opening_mrr <> coalesce(previous_closing_mrr, 0)
    or (previous_month_start is not null and previous_month_start <> month_start - interval '1 month')
    or expansion_mrr <> upsell_mrr + cross_sell_mrr
    or plan_mrr + option_mrr <> closing_mrr
    or (case when new_mrr > 0 then 1 else 0 end + case when reactivation_mrr > 0 then 1 else 0 end
        + case when expansion_mrr > 0 then 1 else 0 end + case when contraction_mrr > 0 then 1 else 0 end
        + case when churn_mrr > 0 then 1 else 0 end) > 1
