-- One row per company and month, from its first billed month through the last closed month: opening and
-- closing MRR, the movement between them (new, reactivation, expansion split into upsell and
-- cross-sell, contraction, churn) and the trailing-twelve-month comparison. For every row:
-- opening + new + reactivation + expansion - contraction - churn = closing.

with

monthly as (

    select * from {{ ref('int_revenue_company_monthly') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

with_history as (

    -- The spine has every month from the first billed one, so lag(…, 12) is the month a year earlier.
    select
        monthly.*,
        coalesce(lag(monthly.mrr) over company_months, 0) as opening_mrr,
        coalesce(lag(monthly.plan_mrr) over company_months, 0) as opening_plan_mrr,
        coalesce(bool_or(monthly.mrr > 0) over (
            partition by monthly.company_id order by monthly.month_start
            rows between unbounded preceding and 1 preceding
        ), false) as had_mrr_before,
        coalesce(lag(monthly.mrr, 12) over company_months, 0) as mrr_12_months_ago,
        min(monthly.month_start) filter (where monthly.mrr > 0) over (partition by monthly.company_id) as first_mrr_month
    from monthly
    window company_months as (partition by monthly.company_id order by monthly.month_start)

),

movements as (

    select
        *,
        case when opening_mrr = 0 and mrr > 0 and not had_mrr_before then mrr else 0 end as new_mrr,
        case when opening_mrr = 0 and mrr > 0 and had_mrr_before then mrr else 0 end as reactivation_mrr,
        case when opening_mrr > 0 and mrr > opening_mrr then mrr - opening_mrr else 0 end as expansion_mrr,
        case when mrr > 0 and mrr < opening_mrr then opening_mrr - mrr else 0 end as contraction_mrr,
        case when opening_mrr > 0 and mrr = 0 then opening_mrr else 0 end as churn_mrr
    from with_history

),

named as (

    select
        movements.*,
        companies.company_name,
        companies.csm_user_id,
        companies.csm_name
    from movements
    left join companies
        on movements.company_id = companies.company_id

),

final as (

    select
        {{ generate_surrogate_key(['company_id', 'month_start']) }} as company_month_id,
        company_id,
        month_start,
        cast(opening_mrr as numeric(18,2)) as opening_mrr,
        cast(new_mrr as numeric(18,2)) as new_mrr,
        cast(reactivation_mrr as numeric(18,2)) as reactivation_mrr,
        cast(expansion_mrr as numeric(18,2)) as expansion_mrr,
        -- Upsell is the part of the expansion the plan's rise explains; the rest is cross-sell (options).
        cast(least(expansion_mrr, greatest(plan_mrr - opening_plan_mrr, 0)) as numeric(18,2)) as upsell_mrr,
        cast(expansion_mrr - least(expansion_mrr, greatest(plan_mrr - opening_plan_mrr, 0)) as numeric(18,2))
            as cross_sell_mrr,
        cast(contraction_mrr as numeric(18,2)) as contraction_mrr,
        cast(churn_mrr as numeric(18,2)) as churn_mrr,
        cast(mrr as numeric(18,2)) as closing_mrr,
        cast(plan_mrr as numeric(18,2)) as plan_mrr,
        cast(option_mrr as numeric(18,2)) as option_mrr,
        case
            when new_mrr > 0 then 'new'
            when reactivation_mrr > 0 then 'reactivation'
            when expansion_mrr > 0 then 'expansion'
            when contraction_mrr > 0 then 'contraction'
            when churn_mrr > 0 then 'churn'
            when mrr > 0 then 'flat'
            else 'inactive'
        end as movement,
        cast(paid_services_revenue as numeric(18,2)) as paid_services_revenue,
        first_mrr_month,
        cast(mrr_12_months_ago as numeric(18,2)) as mrr_12_months_ago,
        cast(case when mrr_12_months_ago > 0 then greatest(mrr - mrr_12_months_ago, 0) else 0 end as numeric(18,2))
            as expansion_mrr_t12m,
        cast(case when mrr_12_months_ago > 0 then greatest(mrr_12_months_ago - mrr, 0) else 0 end as numeric(18,2))
            as gross_churn_mrr_t12m,
        cast(round(mrr / nullif(mrr_12_months_ago, 0), 6) as numeric(12,6)) as nrr_t12m,
        -- who, for people and BI tools (as the company is known now)
        cast(company_name as text) as company_name,
        cast(csm_user_id as text) as csm_user_id,
        cast(csm_name as text) as csm_name,
        {{ run_date() }} as computed_for_run_date
    from named

)

select * from final
