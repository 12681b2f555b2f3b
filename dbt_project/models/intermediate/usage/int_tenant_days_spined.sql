{#
    One row per tenant per business date, gap-free, ending on run_date. The trailing windows in
    fct_tenant_daily_usage are row frames over this spine, so it must have no holes.

    A day is under contract from the contract start to the cancellation date (both included: the
    cancellation date is the last day of service), except between two plan periods: a tenant that
    cancelled and signed again was not under contract between.

    A tenant's spine starts on its contract start date or its first recorded activity, whichever is
    earlier, but never before run_date - (usage_history_days + 119 - 1): the fct keeps
    usage_history_days dates of history (`is_in_history`), and its longest frame (attendees in the
    90 days before the current 30-day window) looks 119 rows back, so every kept row has complete
    windows.

    A table, rebuilt by every run: is_run_date and is_in_history are relative to the run date, and its
    tests read the rows once instead of recomputing every tenant's first activity each time.
#}
{{ config(materialized='table') }}
{%- set lookback_days = 119 -%}
{%- set history_days = var('usage_history_days') | int -%}

with

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

tenant_plans as (

    select * from {{ ref('stg_nexpro__tenant_plans') }}

),

login_events as (

    select * from {{ ref('stg_nexpro__login_events') }}

),

webinars as (

    select * from {{ ref('stg_nexpro__webinars') }}

),

viewing_sessions as (

    select * from {{ ref('stg_nexpro__viewing_sessions') }}

),

feature_events as (

    select * from {{ ref('stg_nexpro__feature_events') }}

),

data_transfer_daily as (

    select * from {{ ref('stg_nexpro__data_transfer_daily') }}

),

day_numbers as (

    {{ dbt.generate_series(history_days + lookback_days) }}

),

calendar_days as (

    select
        cast({{ dbt.dateadd('day', '1 - generated_number', run_date()) }} as date) as usage_date,
        generated_number <= {{ history_days }} as is_in_history
    from day_numbers

),

activity_dates as (

    select tenant_id, logged_in_date as activity_date from login_events
    union all
    select tenant_id, held_date as activity_date from webinars where is_held
    union all
    select tenant_id, joined_date as activity_date from viewing_sessions
    union all
    select tenant_id, occurred_date as activity_date from feature_events
    union all
    select tenant_id, usage_date as activity_date from data_transfer_daily

),

first_activity_dates as (

    select
        tenant_id,
        min(activity_date) as first_activity_date
    from activity_dates
    group by tenant_id

),

tenant_spine_starts as (

    select
        tenants.tenant_id,
        tenants.contract_started_date,
        tenants.cancelled_date,
        case
            when first_activity_dates.first_activity_date < tenants.contract_started_date
                then first_activity_dates.first_activity_date
            else tenants.contract_started_date
        end as spine_started_date
    from tenants
    left join first_activity_dates
        on tenants.tenant_id = first_activity_dates.tenant_id

),

plan_gaps as (

    -- From the end of one plan period to the start of the next, when they do not touch: the time between
    -- a cancellation and a reactivation.
    select * from (
        select
            tenant_id,
            plan_ended_date as gap_started_date,
            lead(plan_started_date) over (partition by tenant_id order by plan_started_date) as gap_ended_date
        from tenant_plans
    ) as periods
    where gap_ended_date > gap_started_date

),

spine_days as (

    select
        tenant_spine_starts.tenant_id,
        tenant_spine_starts.contract_started_date,
        tenant_spine_starts.cancelled_date,
        calendar_days.usage_date,
        calendar_days.is_in_history
    from tenant_spine_starts
    inner join calendar_days
        on calendar_days.usage_date >= tenant_spine_starts.spine_started_date

),

-- the spine days that fall in a plan gap (a join, not a per-row lookup: the spine has millions of rows)
days_between_plans as (

    select distinct
        spine_days.tenant_id,
        spine_days.usage_date
    from spine_days
    inner join plan_gaps
        on spine_days.tenant_id = plan_gaps.tenant_id
        and spine_days.usage_date >= plan_gaps.gap_started_date
        and spine_days.usage_date < plan_gaps.gap_ended_date

),

tenant_days as (

    select
        spine_days.tenant_id,
        spine_days.usage_date,
        spine_days.is_in_history,
        spine_days.usage_date = {{ run_date() }} as is_run_date,
        spine_days.usage_date >= spine_days.contract_started_date
        and (
            spine_days.cancelled_date is null
            or spine_days.usage_date <= spine_days.cancelled_date
        )
        and days_between_plans.tenant_id is null as is_under_contract
    from spine_days
    left join days_between_plans
        on spine_days.tenant_id = days_between_plans.tenant_id
        and spine_days.usage_date = days_between_plans.usage_date

),

final as (

    select
        {{ generate_surrogate_key(['tenant_id', 'usage_date']) }} as tenant_usage_date_id,
        tenant_id,
        usage_date,
        is_run_date,
        is_in_history,
        is_under_contract
    from tenant_days

)

select * from final
