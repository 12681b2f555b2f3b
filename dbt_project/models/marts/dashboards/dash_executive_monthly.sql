-- The Executive dashboard, one row per month: the closed months of the revenue marts (NRR, gross churn,
-- expansion, MRR, with the KPI targets of the month's programme year), the months with health scores
-- (the Green/Yellow/Red mix on the month's last scored day; the run date's month is month to date), the
-- CS-originated revenue of the month (won Upsell and Cross-sell deals by close date), its paid-services
-- revenue, and CMRR as of the run date on the last closed month's row. A KPI with no figure in a month
-- (nobody eligible, not enough history) has a null share and its reason beside it (<kpi>_reason, from
-- fct_kpi_monthly).

with

revenue as (

    select * from {{ ref('fct_revenue_monthly') }}

),

kpis as (

    select * from {{ ref('fct_kpi_monthly') }}

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

cmrr as (

    select * from {{ ref('fct_cmrr') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

-- the closed months, and the months with a health score (up to the run date's month)
months as (

    select month_start from revenue
    union
    select distinct cast({{ dbt.date_trunc('month', 'score_date') }} as date) from health_scores
    where score_date <= {{ run_date() }}

),

last_closed_month as (

    select max(month_start) as month_start from revenue

),

targets as (

    select
        month_start,
        max(programme_year) as programme_year,
        {%- for kpi in ['nrr_t12m', 'gross_churn_rate_t12m', 'expansion_rate_t12m', 'green_ratio', 'red_ratio'] %}
        max(target) filter (where kpi_key = '{{ kpi }}') as {{ kpi }}_target,
        -- why the month has no figure for the KPI (fct_kpi_monthly.reason), else null
        max(reason) filter (where kpi_key = '{{ kpi }}') as {{ kpi }}_reason{{ ',' if not loop.last }}
        {%- endfor %}
    from kpis
    group by month_start

),

-- health mix on the month's last scored day, as the Green and Red ratio KPIs read it
last_scored_days as (

    select
        cast({{ dbt.date_trunc('month', 'score_date') }} as date) as month_start,
        max(score_date) as score_date
    from health_scores
    where score_date <= {{ run_date() }}
    group by 1

),

health_mix as (

    select
        last_scored_days.month_start,
        last_scored_days.score_date,
        count(*) as companies_scored,
        count(*) filter (where health_scores.health_status = 'Green') as green_companies,
        count(*) filter (where health_scores.health_status = 'Yellow') as yellow_companies,
        count(*) filter (where health_scores.health_status = 'Red') as red_companies,
        count(health_scores.health_status) as companies_with_status
    from last_scored_days
    inner join health_scores
        on last_scored_days.score_date = health_scores.score_date
    group by last_scored_days.month_start, last_scored_days.score_date

),

-- CS-originated revenue: Upsell and Cross-sell deals won, by close date (Amount is annual)
cs_originated as (

    select
        cast({{ dbt.date_trunc('month', 'close_date') }} as date) as month_start,
        count(*) as deals_won,
        sum(amount_jpy) as amount_jpy
    from opportunities
    where opportunity_type in ('Upsell', 'Cross-sell')
        and is_won
        and close_date <= {{ run_date() }}
    group by 1

),

cmrr_total as (

    select
        sum(mrr) as mrr,
        sum(won_not_started_mrr) as won_not_started_mrr,
        sum(scheduled_cancellation_mrr) as scheduled_cancellation_mrr,
        sum(cmrr) as cmrr
    from cmrr

),

final as (

    select
        -- the month
        cast(months.month_start as date) as month_start,
        cast(revenue.month_start is not null as boolean) as is_closed_month,
        cast(months.month_start = last_closed_month.month_start as boolean) as is_last_closed_month,
        cast(targets.programme_year as integer) as programme_year,

        -- MRR and its movements
        cast(revenue.customers_at_end as integer) as customers,
        cast(revenue.opening_mrr as numeric(18,2)) as opening_mrr,
        cast(revenue.new_mrr + revenue.reactivation_mrr as numeric(18,2)) as new_and_reactivation_mrr,
        cast(revenue.expansion_mrr as numeric(18,2)) as expansion_mrr,
        cast(revenue.upsell_mrr as numeric(18,2)) as upsell_mrr,
        cast(revenue.cross_sell_mrr as numeric(18,2)) as cross_sell_mrr,
        cast(revenue.contraction_mrr as numeric(18,2)) as contraction_mrr,
        cast(revenue.churn_mrr as numeric(18,2)) as churn_mrr,
        cast(revenue.closing_mrr as numeric(18,2)) as mrr,

        -- retention: the month, and the trailing twelve months against the programme year's target
        cast(revenue.nrr as numeric(12,6)) as nrr,
        cast(revenue.grr as numeric(12,6)) as grr,
        cast(revenue.gross_churn_rate as numeric(12,6)) as gross_churn_rate,
        cast(revenue.expansion_rate as numeric(12,6)) as expansion_rate,
        cast(revenue.nrr_t12m as numeric(12,6)) as nrr_t12m,
        cast(targets.nrr_t12m_target as numeric(12,6)) as nrr_t12m_target,
        cast(targets.nrr_t12m_reason as text) as nrr_t12m_reason,
        cast(revenue.grr_t12m as numeric(12,6)) as grr_t12m,
        cast(revenue.gross_churn_rate_t12m as numeric(12,6)) as gross_churn_rate_t12m,
        cast(targets.gross_churn_rate_t12m_target as numeric(12,6)) as gross_churn_rate_t12m_target,
        cast(targets.gross_churn_rate_t12m_reason as text) as gross_churn_rate_t12m_reason,
        cast(revenue.expansion_rate_t12m as numeric(12,6)) as expansion_rate_t12m,
        cast(targets.expansion_rate_t12m_target as numeric(12,6)) as expansion_rate_t12m_target,
        cast(targets.expansion_rate_t12m_reason as text) as expansion_rate_t12m_reason,

        -- CMRR as of the run date, on the last closed month (its MRR is CMRR's base)
        cast(case when months.month_start = last_closed_month.month_start then cmrr_total.won_not_started_mrr end
            as numeric(18,2)) as won_not_started_mrr,
        cast(case when months.month_start = last_closed_month.month_start then cmrr_total.scheduled_cancellation_mrr end
            as numeric(18,2)) as scheduled_cancellation_mrr,
        cast(case when months.month_start = last_closed_month.month_start then cmrr_total.cmrr end
            as numeric(18,2)) as cmrr,

        -- CS-originated revenue
        cast(coalesce(cs_originated.deals_won, 0) as integer) as cs_originated_deals_won,
        cast(coalesce(cs_originated.amount_jpy, 0) as numeric(18,2)) as cs_originated_annual_amount_jpy,
        cast(coalesce(cs_originated.amount_jpy, 0) / 12 as numeric(18,2)) as cs_originated_mrr,

        -- paid services: one-off revenue billed in the month (not MRR)
        cast(revenue.paid_services_revenue as numeric(18,2)) as paid_services_revenue,

        -- health mix on the month's last scored day
        cast(health_mix.score_date as date) as health_scored_on,
        cast(health_mix.companies_scored as integer) as companies_scored,
        cast(health_mix.green_companies as integer) as green_companies,
        cast(health_mix.yellow_companies as integer) as yellow_companies,
        cast(health_mix.red_companies as integer) as red_companies,
        cast(round(health_mix.green_companies / nullif(cast(health_mix.companies_with_status as numeric), 0), 6)
            as numeric(12,6)) as green_share,
        cast(round(health_mix.yellow_companies / nullif(cast(health_mix.companies_with_status as numeric), 0), 6)
            as numeric(12,6)) as yellow_share,
        cast(round(health_mix.red_companies / nullif(cast(health_mix.companies_with_status as numeric), 0), 6)
            as numeric(12,6)) as red_share,
        cast(targets.green_ratio_target as numeric(12,6)) as green_share_target,
        cast(targets.red_ratio_target as numeric(12,6)) as red_share_target,
        cast(targets.green_ratio_reason as text) as green_share_reason,
        cast(targets.red_ratio_reason as text) as red_share_reason,

        cast({{ run_date() }} as date) as as_of_date

    from months
    cross join last_closed_month
    cross join cmrr_total
    left join revenue
        on months.month_start = revenue.month_start
    left join targets
        on months.month_start = targets.month_start
    left join health_mix
        on months.month_start = health_mix.month_start
    left join cs_originated
        on months.month_start = cs_originated.month_start

)

select * from final
