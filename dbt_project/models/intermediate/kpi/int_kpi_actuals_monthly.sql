{#
    One row per KPI of the KPI tree (macro kpi_tree) and closed month it is measured in: the actual, with its
    numerator and denominator, or, when it has none that month, the reason (not_enough_history,
    no_eligible_customers). Months run through the last closed month (the month before run_date's), like
    the revenue marts. The revenue KPIs cover every closed month of fct_revenue_monthly; the leading
    indicators cover the months from the first month of the recorded product history (its first month may be
    partial); Green and Red ratio the months with health scores, as of their last scored day. Salesforce data completeness is known only as of the run date and is reported on the last
    closed month. "Customers" of a month are the companies with MRR in it (board), so a company missing from
    Salesforce or Nexpro still counts, against the rate.
#}
{%- set completeness_fields = [
    'industry', 'number_of_employees', 'tier', 'growth_potential', 'contract_start_date', 'renewal_date',
    'annual_contract_value_jpy', 'nexpro_tenant_key', 'board_client_key', 'owner_user_id',
] -%}

with

revenue as (

    select * from {{ ref('fct_revenue_monthly') }}

),

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

companies as (

    select * from {{ ref('dim_companies') }}

),

onboarding as (

    select * from {{ ref('int_company_onboarding_milestones') }}

),

tenant_days as (

    select * from {{ ref('int_tenant_daily_activity_aggregated') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

outcome_goals as (

    select * from {{ ref('stg_salesforce__outcome_goals') }}

),

results_in_force as (

    select * from {{ ref('int_outcome_results_in_force') }}

),

events as (

    select * from {{ ref('stg_salesforce__events') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

usages as (

    select * from {{ ref('stg_salesforce__usages') }}

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

product_history as (

    select min(usage_date) as recorded_from
    from tenant_days
    where had_login or webinars_held > 0

),

months as (

    -- every closed month, and whether the leading indicators cover it
    select
        revenue.month_start,
        cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'revenue.month_start')) }} as date) as month_end,
        revenue.month_start >= {{ dbt.date_trunc('month', 'product_history.recorded_from') }}
            as has_leading_indicators
    from revenue
    cross join product_history

),

leading_months as (

    select * from months where has_leading_indicators

),

customer_months as (

    select
        company_months.company_id,
        leading_months.month_start,
        leading_months.month_end
    from company_months
    inner join leading_months
        on company_months.month_start = leading_months.month_start
    where company_months.closing_mrr > 0

),

-- NRR, gross churn and expansion over the trailing twelve months; paid services over the same twelve months
revenue_kpis as (

    select
        month_start,
        'nrr_t12m' as kpi_key,
        mrr_12_months_ago + expansion_mrr_t12m - gross_churn_mrr_t12m as numerator,
        mrr_12_months_ago as denominator
    from revenue

    union all

    select month_start, 'gross_churn_rate_t12m', gross_churn_mrr_t12m, mrr_12_months_ago
    from revenue

    union all

    select month_start, 'expansion_rate_t12m', expansion_mrr_t12m, mrr_12_months_ago
    from revenue

),

paid_services as (

    select
        month_start,
        sum(paid_services_revenue) over twelve_months as paid_services_revenue_t12m,
        count(*) over twelve_months as months_in_window
    from revenue
    window twelve_months as (order by month_start rows between 11 preceding and current row)

),

-- Green and Red ratio: the status mix on the month's last scored day
last_scored_days as (

    select
        months.month_start,
        max(health_scores.score_date) as score_date
    from months
    inner join health_scores
        on health_scores.score_date between months.month_start and months.month_end
    group by months.month_start

),

status_mix as (

    select
        last_scored_days.month_start,
        count(case when health_scores.health_status = 'Green' then 1 end) as green,
        count(case when health_scores.health_status = 'Red' then 1 end) as red,
        count(*) as with_status
    from last_scored_days
    inner join health_scores
        on last_scored_days.score_date = health_scores.score_date
    where health_scores.health_status is not null
    group by last_scored_days.month_start

),

-- onboarding: the customers whose completion window ended in the month
onboarding_completion as (

    select
        leading_months.month_start,
        count(case when onboarding.is_completed_within_window then 1 end) as numerator,
        count(*) as denominator
    from onboarding
    inner join leading_months
        on onboarding.completion_deadline between leading_months.month_start and leading_months.month_end
    group by leading_months.month_start

),

-- Time to First Value: the customers whose first value event fell in the month
first_value as (

    select
        leading_months.month_start,
        sum(onboarding.days_to_first_value) as numerator,
        count(*) as denominator
    from onboarding
    inner join leading_months
        on onboarding.first_value_date between leading_months.month_start and leading_months.month_end
    group by leading_months.month_start

),

-- outcome goals defined (created by the month's end, not past their end date) and their latest results
goals as (

    select
        account_companies.company_id,
        outcome_goals.outcome_goal_id,
        outcome_goals.end_date,
        {{ to_business_date('outcome_goals.created_at') }} as created_date
    from outcome_goals
    inner join account_companies
        on outcome_goals.account_id = account_companies.account_id

),

goals_at_month_end as (

    select
        customer_months.company_id,
        customer_months.month_start,
        customer_months.month_end,
        goals.outcome_goal_id
    from customer_months
    inner join goals
        on customer_months.company_id = goals.company_id
        and goals.created_date <= customer_months.month_end
        and (goals.end_date is null or goals.end_date >= customer_months.month_end)

),

outcome_definition as (

    select
        customer_months.month_start,
        count(distinct goals_at_month_end.company_id) as numerator,
        count(distinct customer_months.company_id) as denominator
    from customer_months
    left join goals_at_month_end
        on customer_months.company_id = goals_at_month_end.company_id
        and customer_months.month_start = goals_at_month_end.month_start
    group by customer_months.month_start

),

latest_results as (

    -- each goal's latest result as of the month's end, capped at 100%
    select
        goals_at_month_end.company_id,
        goals_at_month_end.month_start,
        goals_at_month_end.outcome_goal_id,
        least(results_in_force.achievement_rate, 1) as capped_achievement_rate
    from goals_at_month_end
    inner join results_in_force
        on goals_at_month_end.outcome_goal_id = results_in_force.outcome_goal_id
        and results_in_force.entered_on <= goals_at_month_end.month_end
        and (results_in_force.superseded_on is null or results_in_force.superseded_on > goals_at_month_end.month_end)

),

company_achievement as (

    select
        company_id,
        month_start,
        avg(capped_achievement_rate) as goal_achievement_rate
    from latest_results
    group by company_id, month_start

),

outcome_achieving as (

    select
        month_start,
        count(case when goal_achievement_rate >= 1 then 1 end) as numerator,
        count(*) as denominator
    from company_achievement
    group by month_start

),

-- QBRs: Tier 1 and 2 customers with a QBR in the three months ending with the month
qbrs as (

    select
        account_companies.company_id,
        events.activity_date
    from events
    inner join account_companies
        on events.account_id = account_companies.account_id
    where events.is_qbr
        and events.activity_date <= {{ run_date() }}

),

qbr_rate as (

    select
        customer_months.month_start,
        count(distinct qbrs.company_id) as numerator,
        count(distinct customer_months.company_id) as denominator
    from customer_months
    inner join companies
        on customer_months.company_id = companies.company_id
    left join qbrs
        on customer_months.company_id = qbrs.company_id
        and qbrs.activity_date between {{ dbt.dateadd('month', -2, 'customer_months.month_start') }}
            and customer_months.month_end
    where companies.tier in ('Tier 1', 'Tier 2')
    group by customer_months.month_start

),

-- expansion proposals: upsell and cross-sell opportunities
proposals as (

    select
        opportunity_id,
        {{ to_business_date('created_at') }} as created_date,
        close_date,
        is_closed,
        is_won
    from opportunities
    where opportunity_type in ('Upsell', 'Cross-sell')
        and {{ to_business_date('created_at') }} <= {{ run_date() }}

),

csms as (

    select
        customer_months.month_start,
        count(distinct companies.csm_user_id) as csms
    from customer_months
    inner join companies
        on customer_months.company_id = companies.company_id
    group by customer_months.month_start

),

proposals_per_csm as (

    select
        leading_months.month_start,
        count(proposals.opportunity_id) as numerator,
        max(csms.csms) as denominator
    from leading_months
    left join proposals
        on proposals.created_date between leading_months.month_start and leading_months.month_end
    left join csms
        on leading_months.month_start = csms.month_start
    group by leading_months.month_start

),

proposal_close as (

    select
        leading_months.month_start,
        count(case when proposals.is_won then 1 end) as numerator,
        count(proposals.opportunity_id) as denominator
    from leading_months
    left join proposals
        on proposals.is_closed
        and proposals.close_date between leading_months.month_start and leading_months.month_end
    group by leading_months.month_start

),

-- Salesforce data completeness: key Account fields filled on the accounts of today's customers
data_completeness as (

    select
        {{ dbt.dateadd('month', -1, dbt.date_trunc('month', run_date())) }} as month_start,
        sum(
            {%- for field in completeness_fields %}
            case when accounts.{{ field }} is not null then 1 else 0 end{{ ' +' if not loop.last }}
            {%- endfor %}
        ) as numerator,
        {{ completeness_fields | length }} * count(*) as denominator
    from companies
    inner join accounts
        on companies.account_id = accounts.account_id
    where companies.is_customer

),

-- usage auto-sync: customers with an account whose usage of the month reached Salesforce
usage_synced as (

    select distinct
        account_companies.company_id,
        {{ dbt.date_trunc('month', 'usages.usage_date') }} as month_start
    from usages
    inner join account_companies
        on usages.account_id = account_companies.account_id
    where usages.usage_date <= {{ run_date() }}

),

usage_auto_sync as (

    select
        customer_months.month_start,
        count(distinct usage_synced.company_id) as numerator,
        count(distinct customer_months.company_id) as denominator
    from customer_months
    inner join companies
        on customer_months.company_id = companies.company_id
    left join usage_synced
        on customer_months.company_id = usage_synced.company_id
        and customer_months.month_start = usage_synced.month_start
    where companies.account_id is not null
    group by customer_months.month_start

),

ratios as (

    select month_start, kpi_key, numerator, denominator from revenue_kpis
    union all
    select month_start, 'green_ratio', green, with_status from status_mix
    union all
    select month_start, 'red_ratio', red, with_status from status_mix
    union all
    select month_start, 'onboarding_completion_rate', numerator, denominator from onboarding_completion
    union all
    select month_start, 'outcome_definition_rate', numerator, denominator from outcome_definition
    union all
    select month_start, 'outcome_achieving_rate', numerator, denominator from outcome_achieving
    union all
    select month_start, 'qbr_rate_tier_1_2', numerator, denominator from qbr_rate
    union all
    select month_start, 'proposal_close_rate', numerator, denominator from proposal_close
    union all
    select month_start, 'salesforce_data_completeness', numerator, denominator from data_completeness
    union all
    select month_start, 'usage_auto_sync_rate', numerator, denominator from usage_auto_sync

),

actuals as (

    select
        month_start,
        kpi_key,
        numerator,
        denominator,
        round(numerator / nullif(cast(denominator as numeric), 0), 6) as actual
    from ratios

    union all

    select
        month_start,
        'time_to_first_value_days',
        numerator,
        denominator,
        round(numerator / nullif(cast(denominator as numeric), 0), 1)
    from first_value

    union all

    select
        month_start,
        'expansion_proposals_per_csm',
        numerator,
        denominator,
        round(numerator / nullif(cast(denominator as numeric), 0), 2)
    from proposals_per_csm

    union all

    -- only once twelve closed months are in the window
    select
        month_start,
        'paid_services_revenue_t12m',
        paid_services_revenue_t12m,
        cast(null as numeric),
        case when months_in_window = 12 then paid_services_revenue_t12m end
    from paid_services

),

-- every KPI and month it is measured in (macro kpi_tree)
last_closed_month as (

    select * from months
    where month_start = {{ dbt.dateadd('month', -1, dbt.date_trunc('month', run_date())) }}

),

kpi_months as (

    {%- for kpi_key, coverage in kpi_tree().items() %}
    select month_start, month_end, '{{ kpi_key }}' as kpi_key
    from {{ {'closed_months': 'months', 'product_history': 'leading_months',
             'last_closed_month': 'last_closed_month'}[coverage] }}
    {{- '\n    union all' if not loop.last }}
    {%- endfor %}

),

revenue_history as (

    select min(month_start) as first_month from revenue

),

final as (

    select
        cast(kpi_months.month_start as date) as month_start,
        cast(kpi_months.kpi_key as text) as kpi_key,
        cast(actuals.actual as numeric(18,6)) as actual,
        cast(actuals.numerator as numeric(18,2)) as numerator,
        cast(actuals.denominator as numeric(18,2)) as denominator,
        cast(case
            when kpi_months.kpi_key = 'salesforce_data_completeness' then {{ run_date() }}
            else kpi_months.month_end
        end as date) as measured_on,
        -- why a month has no actual: its twelve-month window (or the health scores) reaches back before the
        -- recorded history, or nobody was eligible (no customer finished onboarding, no deal closed, ...)
        cast(case
            when actuals.actual is not null then null
            when kpi_months.kpi_key in ('nrr_t12m', 'gross_churn_rate_t12m', 'expansion_rate_t12m')
                and kpi_months.month_start < {{ dbt.dateadd('month', 12, 'revenue_history.first_month') }}
                then 'not_enough_history'
            when kpi_months.kpi_key = 'paid_services_revenue_t12m'
                and kpi_months.month_start < {{ dbt.dateadd('month', 11, 'revenue_history.first_month') }}
                then 'not_enough_history'
            when kpi_months.kpi_key in ('green_ratio', 'red_ratio') and last_scored_days.score_date is null
                then 'not_enough_history'
            else 'no_eligible_customers'
        end as text) as reason
    from kpi_months
    cross join revenue_history
    left join actuals
        on kpi_months.month_start = actuals.month_start
        and kpi_months.kpi_key = actuals.kpi_key
    left join last_scored_days
        on kpi_months.month_start = last_scored_days.month_start

)

select * from final
