-- The Customer 360 dashboard: one row per company (dim_companies) as of the run date, everything about it
-- in one row: who it is in Salesforce, Nexpro and board and how well the keys match, its Tier and touch
-- model, plan and contract, MRR of the last closed month and its twelve-month change, CMRR, health now with
-- the category sub-scores and reasons, active signals, trailing usage windows, key persons, the latest
-- NPS answer, outcome achievement, open work (tasks, opportunities), the latest touchpoint and QBR, and
-- the identity issues its records have. Only facts dated on or before the run date count.

with

companies as (

    select * from {{ ref('dim_companies') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

revenue as (

    select * from {{ ref('fct_revenue_monthly') }}

),

cmrr as (

    select * from {{ ref('fct_cmrr') }}

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

signals as (

    select * from {{ ref('fct_company_signals') }}

),

usage as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

identity_issues as (

    select * from {{ ref('dq_identity_issues') }}

),

contacts as (

    select * from {{ ref('stg_salesforce__contacts') }}

),

tasks as (

    select * from {{ ref('stg_salesforce__tasks') }}

),

events as (

    select * from {{ ref('stg_salesforce__events') }}

),

touchpoints as (

    select * from {{ ref('int_company_touchpoints') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

nps_responses as (

    select * from {{ ref('stg_nexpro__nps_responses') }}

),

last_closed_month as (

    select max(month_start) as month_start from revenue

),

mrr as (

    select company_months.*
    from company_months
    inner join last_closed_month
        on company_months.month_start = last_closed_month.month_start

),

health_now as (

    select * from health_scores where score_date = {{ run_date() }}

),

usage_now as (

    select * from usage where usage_date = {{ run_date() }}

),

company_signals as (

    select
        company_id,
        array_agg(signal_key order by signal_kind, signal_key) as active_signals,
        string_agg(signal_name || ': ' || detail, '; ' order by signal_kind, signal_key) as active_signals_text,
        count(*) filter (where signal_kind = 'expansion') as expansion_signals,
        count(*) filter (where signal_kind = 'risk') as risk_signals
    from signals
    group by company_id

),

-- key persons: key-person contacts created by the run date and active that day
key_persons as (

    select
        account_companies.company_id,
        count(*) as key_persons,
        string_agg(
            contacts.contact_name || coalesce(' (' || contacts.title || ')', ''), '; ' order by contacts.contact_name
        ) as key_person_names
    from contacts
    inner join account_companies
        on contacts.account_id = account_companies.account_id
    where contacts.is_key_person
        and {{ to_business_date('contacts.created_at') }} <= {{ run_date() }}
        and (contacts.is_active or {{ to_business_date('contacts.updated_at') }} > {{ run_date() }})
    group by account_companies.company_id

),

-- the latest NPS answer on or before the run date
last_nps as (

    select distinct on (tenant_id)
        tenant_id,
        nps_score,
        nps_category,
        nps_comment,
        responded_date
    from nps_responses
    where responded_date <= {{ run_date() }}
    order by tenant_id, responded_at desc, nps_response_id desc

),

-- tasks open on the run date: created by then and not completed by then; due on activity_date
open_tasks as (

    select
        account_companies.company_id,
        tasks.task_id,
        tasks.subject,
        tasks.activity_date as due_date
    from tasks
    inner join account_companies
        on tasks.account_id = account_companies.account_id
    where {{ to_business_date('tasks.created_at') }} <= {{ run_date() }}
        and (not tasks.is_completed or {{ to_business_date('tasks.completed_at') }} > {{ run_date() }})

),

company_tasks as (

    select
        company_id,
        count(*) as open_tasks,
        count(*) filter (where due_date < {{ run_date() }}) as overdue_tasks,
        min(due_date) filter (where due_date >= {{ run_date() }}) as next_task_due_date,
        array_agg(due_date order by due_date nulls last, task_id) as open_task_due_dates,
        string_agg(
            coalesce(cast(due_date as text), 'no due date') || ' ' || coalesce(subject, ''), '; '
            order by due_date nulls last, task_id
        ) as open_tasks_text
    from open_tasks
    group by company_id

),

-- the latest touchpoint (a task completed, an event held, a meeting note) on or before the run date
last_touchpoints as (

    select
        company_id,
        max(touch_date) as last_touchpoint_date
    from touchpoints
    group by company_id

),

last_qbrs as (

    select
        account_companies.company_id,
        max(events.activity_date) as last_qbr_date
    from events
    inner join account_companies
        on events.account_id = account_companies.account_id
    where events.is_qbr
        and events.activity_date <= {{ run_date() }}
    group by account_companies.company_id

),

-- opportunities created by the run date and not closed by then
open_opportunities as (

    select
        account_companies.company_id,
        count(*) as open_opportunities,
        sum(opportunities.amount_jpy) as open_opportunity_amount_jpy,
        string_agg(
            opportunities.opportunity_type || ' ' || opportunities.stage_name || ' '
                || coalesce(cast(opportunities.amount_jpy as bigint) || ' JPY', 'no amount')
                || ' closing ' || coalesce(cast(opportunities.close_date as text), 'undated'),
            '; ' order by opportunities.close_date, opportunities.opportunity_id
        ) as open_opportunities_text
    from opportunities
    inner join account_companies
        on opportunities.account_id = account_companies.account_id
    where {{ to_business_date('opportunities.created_at') }} <= {{ run_date() }}
        and (not opportunities.is_closed or opportunities.close_date > {{ run_date() }})
    group by account_companies.company_id

),

-- expansion proposals (Upsell and Cross-sell opportunities) created in the run date's month, up to it
proposals_this_month as (

    select
        account_companies.company_id,
        count(*) as expansion_proposals_mtd
    from opportunities
    inner join account_companies
        on opportunities.account_id = account_companies.account_id
    where opportunities.opportunity_type in ('Upsell', 'Cross-sell')
        and {{ to_business_date('opportunities.created_at') }}
            between {{ dbt.date_trunc('month', run_date()) }} and {{ run_date() }}
    group by account_companies.company_id

),

-- identity issues on any of the company's records: its accounts, its tenant, its board client
company_records as (

    select company_id, 'salesforce' as source_system, account_id as record_id from account_companies
    union
    select company_id, 'nexpro', cast(tenant_id as text) from companies where tenant_id is not null
    union
    select company_id, 'board', cast(board_client_id as text) from companies where board_client_id is not null

),

company_issues as (

    select
        company_records.company_id,
        count(*) as data_quality_issues,
        string_agg(identity_issues.issue_type, '; ' order by identity_issues.issue_type, identity_issues.record_id)
            as data_quality_issue_types
    from company_records
    inner join identity_issues
        on company_records.source_system = identity_issues.source_system
        and company_records.record_id = identity_issues.record_id
    group by company_records.company_id

),

final as (

    select
        -- identity
        cast(companies.company_id as text) as company_id,
        cast(companies.company_name as text) as company_name,
        cast(companies.account_id as text) as account_id,
        cast(companies.tenant_id as bigint) as tenant_id,
        cast(companies.board_client_id as bigint) as board_client_id,
        cast(companies.match_status as text) as match_status,
        cast(companies.csm_user_id as text) as csm_user_id,
        cast(companies.csm_name as text) as csm_name,
        cast(companies.industry as text) as industry,
        cast(companies.account_type as text) as account_type,
        cast(companies.is_customer as boolean) as is_customer,

        -- segment
        cast(companies.tier as text) as tier,
        cast(companies.touch_model as text) as touch_model,
        cast(companies.growth_potential as text) as growth_potential,

        -- plan and contract
        cast(companies.current_plan_code as text) as current_plan_code,
        cast(companies.current_plan_name as text) as current_plan_name,
        cast(companies.contract_start_date as date) as contract_start_date,
        cast(companies.renewal_date as date) as renewal_date,
        cast(companies.renewal_date - {{ run_date() }} as integer) as days_to_renewal,
        cast(companies.annual_contract_value_jpy as numeric(18,2)) as annual_contract_value_jpy,

        -- revenue
        cast(last_closed_month.month_start as date) as mrr_month_start,
        cast(mrr.closing_mrr as numeric(18,2)) as mrr,
        cast(mrr.mrr_12_months_ago as numeric(18,2)) as mrr_12_months_ago,
        cast(mrr.closing_mrr - mrr.mrr_12_months_ago as numeric(18,2)) as mrr_change_12m,
        cast(round(mrr.closing_mrr / nullif(mrr.mrr_12_months_ago, 0) - 1, 6) as numeric(12,6)) as mrr_change_12m_rate,
        cast(mrr.movement as text) as mrr_movement,
        cast(cmrr.cmrr as numeric(18,2)) as cmrr,

        -- health now
        cast(health_now.health_status as text) as health_status,
        cast(health_now.computed_status as text) as computed_status,
        cast(health_now.override_reason as text) as override_reason,
        cast(health_now.total_score as numeric(4,2)) as total_score,
        cast(health_now.coverage as numeric(6,4)) as coverage,
        cast(health_now.is_low_coverage as boolean) as is_low_coverage,
        cast(health_now.usage_score as numeric(4,2)) as usage_score,
        cast(health_now.outcome_score as numeric(4,2)) as outcome_score,
        cast(health_now.relationship_score as numeric(4,2)) as relationship_score,
        cast(health_now.contract_score as numeric(4,2)) as contract_score,
        cast(health_now.status_since as date) as status_since,
        cast(health_now.days_in_status as integer) as days_in_status,
        cast(health_now.top_reasons as text) as top_reasons,
        cast(health_now.top_reasons_ja as text) as top_reasons_ja,

        -- signals
        cast(coalesce(company_signals.active_signals, array[]::text[]) as text[]) as active_signals,
        cast(company_signals.active_signals_text as text) as active_signals_text,
        cast(coalesce(company_signals.expansion_signals, 0) as integer) as expansion_signals,
        cast(coalesce(company_signals.risk_signals, 0) as integer) as risk_signals,

        -- usage windows ending on the run date
        cast(usage_now.login_days_30d as integer) as login_days_30d,
        cast(usage_now.login_days_90d as integer) as login_days_90d,
        cast(usage_now.webinars_held_30d as integer) as webinars_held_30d,
        cast(usage_now.webinars_held_90d as integer) as webinars_held_90d,
        cast(usage_now.attendees_30d as integer) as attendees_30d,
        cast(usage_now.attendees_90d as integer) as attendees_90d,
        cast(usage_now.attendee_trend_ratio as numeric(12,4)) as attendee_trend_ratio,
        cast(usage_now.watch_minutes_30d as numeric(18,2)) as watch_minutes_30d,
        cast(usage_now.gb_transferred_30d as numeric(18,3)) as gb_transferred_30d,
        cast(usage_now.feature_depth_tier_30d as text) as feature_depth_tier_30d,
        cast(usage_now.webinar_limit_utilisation_30d as numeric(12,4)) as webinar_limit_utilisation_30d,
        cast(usage_now.storage_limit_utilisation as numeric(12,4)) as storage_limit_utilisation,

        -- relationship
        cast(coalesce(key_persons.key_persons, 0) as integer) as key_persons,
        cast(key_persons.key_person_names as text) as key_person_names,
        cast(last_nps.nps_score as integer) as last_nps_score,
        cast(last_nps.nps_category as text) as last_nps_category,
        cast(last_nps.responded_date as date) as last_nps_date,
        cast(last_nps.nps_comment as text) as last_nps_comment,
        cast(last_touchpoints.last_touchpoint_date as date) as last_touchpoint_date,
        cast({{ run_date() }} - last_touchpoints.last_touchpoint_date as integer) as days_since_last_touchpoint,
        cast(last_qbrs.last_qbr_date as date) as last_qbr_date,
        cast(coalesce(last_qbrs.last_qbr_date > {{ dbt.dateadd('month', -3, run_date()) }}, false) as boolean)
            as has_qbr_last_3_months,

        -- outcomes
        cast(health_now.active_goals as integer) as active_goals,
        cast(health_now.goal_achievement_rate as numeric(8,4)) as goal_achievement_rate,

        -- open work
        cast(coalesce(company_tasks.open_tasks, 0) as integer) as open_tasks,
        cast(coalesce(company_tasks.overdue_tasks, 0) as integer) as overdue_tasks,
        cast(company_tasks.next_task_due_date as date) as next_task_due_date,
        cast(coalesce(company_tasks.open_task_due_dates, array[]::date[]) as date[]) as open_task_due_dates,
        cast(company_tasks.open_tasks_text as text) as open_tasks_text,
        cast(coalesce(open_opportunities.open_opportunities, 0) as integer) as open_opportunities,
        cast(coalesce(open_opportunities.open_opportunity_amount_jpy, 0) as numeric(18,2)) as open_opportunity_amount_jpy,
        cast(open_opportunities.open_opportunities_text as text) as open_opportunities_text,
        cast(coalesce(proposals_this_month.expansion_proposals_mtd, 0) as integer) as expansion_proposals_mtd,

        -- data quality
        cast(coalesce(company_issues.data_quality_issues, 0) as integer) as data_quality_issues,
        cast(company_issues.data_quality_issue_types as text) as data_quality_issue_types,

        cast({{ run_date() }} as date) as as_of_date

    from companies
    cross join last_closed_month
    left join mrr
        on companies.company_id = mrr.company_id
    left join cmrr
        on companies.company_id = cmrr.company_id
    left join health_now
        on companies.company_id = health_now.company_id
    left join company_signals
        on companies.company_id = company_signals.company_id
    left join usage_now
        on companies.tenant_id = usage_now.tenant_id
    left join key_persons
        on companies.company_id = key_persons.company_id
    left join last_nps
        on companies.tenant_id = last_nps.tenant_id
    left join company_tasks
        on companies.company_id = company_tasks.company_id
    left join last_touchpoints
        on companies.company_id = last_touchpoints.company_id
    left join last_qbrs
        on companies.company_id = last_qbrs.company_id
    left join open_opportunities
        on companies.company_id = open_opportunities.company_id
    left join proposals_this_month
        on companies.company_id = proposals_this_month.company_id
    left join company_issues
        on companies.company_id = company_issues.company_id

)

select * from final
