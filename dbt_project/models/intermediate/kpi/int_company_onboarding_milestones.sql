-- One row per company whose current contract started while the product history was already recorded (so
-- its onboarding can be seen), and on or before run_date: the date each onboarding criterion of the
-- onboarding_completion_criteria seed was first met, the date all required ones were (completed_date),
-- whether that was within the completion window, and the first value event for Time to First Value.
-- Only facts dated on or before run_date count. A criterion switched off (is_required false) counts as met
-- on the contract start. A table: the signals, the KPIs, the dashboards and the tests read it, and each would
-- otherwise recompute every company's activity since its contract start.
{{ config(materialized='table') }}

with

companies as (

    select * from {{ ref('dim_companies') }}

),

tenant_days as (

    select * from {{ ref('int_tenant_daily_activity_aggregated') }}

),

outcome_goals as (

    select * from {{ ref('stg_salesforce__outcome_goals') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

criteria as (

    select * from {{ ref('onboarding_completion_criteria') }}

),

thresholds as (

    select
        max(case when criterion_key = 'completion_window_days' then threshold end) as completion_window_days,
        max(case when criterion_key = 'first_webinar_with_attendees' then threshold end) as webinar_min_attendees,
        max(case when criterion_key = 'login_days' then threshold end) as min_login_days,
        max(case when criterion_key = 'advanced_feature_tried' then threshold end) as min_feature_tier_rank,
        max(case when criterion_key = 'outcome_goal_set' then threshold end) as min_outcome_goals,
        max(case when criterion_key = 'first_value_event' then threshold end) as first_value_min_attendees,
        bool_or(criterion_key = 'first_webinar_with_attendees' and is_required) as webinar_required,
        bool_or(criterion_key = 'login_days' and is_required) as login_days_required,
        bool_or(criterion_key = 'advanced_feature_tried' and is_required) as feature_required,
        bool_or(criterion_key = 'outcome_goal_set' and is_required) as outcome_goal_required
    from criteria

),

product_history as (

    -- The first day any tenant did anything: before it, the product's history was not recorded.
    select min(usage_date) as recorded_from
    from tenant_days
    where had_login or webinars_held > 0

),

onboarding_companies as (

    select
        companies.company_id,
        companies.tenant_id,
        companies.account_id,
        companies.contract_start_date
    from companies
    cross join product_history
    where companies.contract_start_date >= product_history.recorded_from
        and companies.contract_start_date <= {{ run_date() }}

),

activity_since_start as (

    select
        onboarding_companies.company_id,
        tenant_days.usage_date,
        tenant_days.had_login,
        tenant_days.peak_webinar_attendees,
        tenant_days.max_feature_tier_rank,
        sum(case when tenant_days.had_login then 1 else 0 end) over (
            partition by onboarding_companies.company_id order by tenant_days.usage_date
        ) as login_days_so_far
    from onboarding_companies
    inner join tenant_days
        on onboarding_companies.tenant_id = tenant_days.tenant_id
        and tenant_days.usage_date >= onboarding_companies.contract_start_date
        and tenant_days.usage_date <= {{ run_date() }}

),

usage_milestones as (

    select
        activity_since_start.company_id,
        min(case when activity_since_start.peak_webinar_attendees >= thresholds.webinar_min_attendees
            then activity_since_start.usage_date end) as first_webinar_date,
        min(case when activity_since_start.had_login
                and activity_since_start.login_days_so_far >= thresholds.min_login_days
            then activity_since_start.usage_date end) as login_days_reached_date,
        min(case when activity_since_start.max_feature_tier_rank >= thresholds.min_feature_tier_rank
            then activity_since_start.usage_date end) as feature_tried_date,
        min(case when activity_since_start.peak_webinar_attendees >= thresholds.first_value_min_attendees
            then activity_since_start.usage_date end) as first_value_date
    from activity_since_start
    cross join thresholds
    group by activity_since_start.company_id

),

goals_numbered as (

    select
        account_companies.company_id,
        {{ to_business_date('outcome_goals.created_at') }} as created_date,
        row_number() over (
            partition by account_companies.company_id
            order by outcome_goals.created_at, outcome_goals.outcome_goal_id
        ) as goal_number
    from outcome_goals
    inner join account_companies
        on outcome_goals.account_id = account_companies.account_id
    where {{ to_business_date('outcome_goals.created_at') }} <= {{ run_date() }}

),

goal_milestones as (

    select
        goals_numbered.company_id,
        min(goals_numbered.created_date) as goals_set_date
    from goals_numbered
    cross join thresholds
    where goals_numbered.goal_number >= thresholds.min_outcome_goals
    group by goals_numbered.company_id

),

milestones as (

    select
        onboarding_companies.company_id,
        onboarding_companies.contract_start_date,
        cast(thresholds.completion_window_days as integer) as completion_window_days,
        case when thresholds.webinar_required then usage_milestones.first_webinar_date
            else onboarding_companies.contract_start_date end as first_webinar_date,
        case when thresholds.login_days_required then usage_milestones.login_days_reached_date
            else onboarding_companies.contract_start_date end as login_days_reached_date,
        case when thresholds.feature_required then usage_milestones.feature_tried_date
            else onboarding_companies.contract_start_date end as feature_tried_date,
        -- a goal defined before the contract started counts from the start (greatest() skips nulls: no
        -- goal must stay null)
        case
            when not thresholds.outcome_goal_required then onboarding_companies.contract_start_date
            when goal_milestones.goals_set_date is not null
                then greatest(goal_milestones.goals_set_date, onboarding_companies.contract_start_date)
        end as outcome_goal_set_date,
        usage_milestones.first_value_date
    from onboarding_companies
    cross join thresholds
    left join usage_milestones
        on onboarding_companies.company_id = usage_milestones.company_id
    left join goal_milestones
        on onboarding_companies.company_id = goal_milestones.company_id

),

completed as (

    select
        milestones.*,
        {{ dbt.dateadd('day', 'milestones.completion_window_days', 'milestones.contract_start_date') }}
            as completion_deadline,
        case
            when milestones.first_webinar_date is not null
                and milestones.login_days_reached_date is not null
                and milestones.feature_tried_date is not null
                and milestones.outcome_goal_set_date is not null
            then greatest(
                milestones.first_webinar_date,
                milestones.login_days_reached_date,
                milestones.feature_tried_date,
                milestones.outcome_goal_set_date
            )
        end as completed_date
    from milestones

),

final as (

    select
        cast(company_id as text) as company_id,
        cast(contract_start_date as date) as contract_start_date,
        cast(completion_window_days as integer) as completion_window_days,
        cast(completion_deadline as date) as completion_deadline,
        cast(first_webinar_date as date) as first_webinar_date,
        cast(login_days_reached_date as date) as login_days_reached_date,
        cast(feature_tried_date as date) as feature_tried_date,
        cast(outcome_goal_set_date as date) as outcome_goal_set_date,
        cast(completed_date as date) as completed_date,
        cast(coalesce(completed_date <= completion_deadline, false) as boolean) as is_completed_within_window,
        -- the window is over, or onboarding completed early: the outcome is final
        cast(completion_deadline <= {{ run_date() }} or completed_date is not null as boolean)
            as is_outcome_known,
        cast(first_value_date as date) as first_value_date,
        cast(first_value_date - contract_start_date as integer) as days_to_first_value
    from completed

)

select * from final
