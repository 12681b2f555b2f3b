{#
    One row per tenant per business date of the spine: that day's activity, zero on days without any,
    and the plan limits in force that day. Daily values only; the trailing windows are built in
    fct_tenant_daily_usage.

    A table, rebuilt by every run (its spine flags are relative to the run date): the usage mart, the
    onboarding milestones and the tests read the day aggregates once instead of recomputing them from
    the event tables each time.
#}
{{ config(materialized='table') }}

with

tenant_days as (

    select * from {{ ref('int_tenant_days_spined') }}

),

login_events as (

    select * from {{ ref('stg_nexpro__login_events') }}

),

webinars as (

    select * from {{ ref('stg_nexpro__webinars') }}

),

registrations as (

    select * from {{ ref('stg_nexpro__registrations') }}

),

viewing_sessions as (

    select * from {{ ref('stg_nexpro__viewing_sessions') }}

),

feature_events as (

    select * from {{ ref('stg_nexpro__feature_events') }}

),

feature_catalog as (

    select * from {{ ref('feature_catalog') }}

),

feature_tiers as (

    select * from {{ ref('feature_tiers') }}

),

data_transfer_daily as (

    select * from {{ ref('stg_nexpro__data_transfer_daily') }}

),

tenant_plans as (

    select * from {{ ref('stg_nexpro__tenant_plans') }}

),

plans as (

    select * from {{ ref('stg_nexpro__plans') }}

),

daily_logins as (

    select
        tenant_id,
        logged_in_date as usage_date,
        count(*) as logins,
        count(distinct user_id) as active_users
    from login_events
    group by tenant_id, logged_in_date

),

held_webinar_attendees as (

    -- attendees of a webinar = its registrations marked attended, counted on the day it was held
    select
        webinars.tenant_id,
        webinars.webinar_id,
        webinars.held_date,
        sum(case when registrations.has_attended then 1 else 0 end) as attendees
    from webinars
    left join registrations
        on webinars.webinar_id = registrations.webinar_id
    where webinars.is_held
    group by webinars.tenant_id, webinars.webinar_id, webinars.held_date

),

daily_webinars as (

    select
        tenant_id,
        held_date as usage_date,
        count(*) as webinars_held,
        sum(attendees) as attendees,
        max(attendees) as peak_webinar_attendees
    from held_webinar_attendees
    group by tenant_id, held_date

),

daily_viewing as (

    select
        tenant_id,
        joined_date as usage_date,
        count(*) as viewing_sessions,
        sum(watch_minutes) as watch_minutes
    from viewing_sessions
    group by tenant_id, joined_date

),

feature_events_tiered as (

    -- a key the catalog does not know yet counts as tier none (rank 0)
    select
        feature_events.tenant_id,
        feature_events.occurred_date,
        coalesce(feature_tiers.feature_tier_rank, 0) as feature_tier_rank
    from feature_events
    left join feature_catalog
        on feature_events.feature_key = feature_catalog.feature_key
    left join feature_tiers
        on feature_catalog.feature_tier = feature_tiers.feature_tier

),

daily_features as (

    select
        tenant_id,
        occurred_date as usage_date,
        count(*) as feature_events,
        max(feature_tier_rank) as max_feature_tier_rank
    from feature_events_tiered
    group by tenant_id, occurred_date

),

plan_periods as (

    select
        tenant_plans.tenant_id,
        tenant_plans.plan_id,
        tenant_plans.plan_started_date,
        tenant_plans.plan_ended_date,
        plans.webinars_per_month_limit,
        plans.attendees_per_webinar_limit,
        plans.storage_gb_limit
    from tenant_plans
    inner join plans
        on tenant_plans.plan_id = plans.plan_id

),

joined as (

    select
        tenant_days.tenant_usage_date_id,
        tenant_days.tenant_id,
        tenant_days.usage_date,
        tenant_days.is_run_date,
        tenant_days.is_in_history,
        tenant_days.is_under_contract,

        coalesce(daily_logins.logins, 0) > 0 as had_login,
        coalesce(daily_logins.logins, 0) as logins,
        coalesce(daily_logins.active_users, 0) as active_users,
        coalesce(daily_webinars.webinars_held, 0) as webinars_held,
        coalesce(daily_webinars.attendees, 0) as attendees,
        coalesce(daily_webinars.peak_webinar_attendees, 0) as peak_webinar_attendees,
        coalesce(daily_viewing.viewing_sessions, 0) as viewing_sessions,
        coalesce(daily_viewing.watch_minutes, 0) as watch_minutes,
        coalesce(daily_features.feature_events, 0) as feature_events,
        coalesce(daily_features.max_feature_tier_rank, 0) as max_feature_tier_rank,
        coalesce(data_transfer_daily.bytes_transferred, 0) as bytes_transferred,
        -- storage is a level, not a flow: no reading that day stays null (the fct carries the last one forward)
        data_transfer_daily.storage_bytes,

        plan_periods.plan_id,
        plan_periods.webinars_per_month_limit,
        plan_periods.attendees_per_webinar_limit,
        plan_periods.storage_gb_limit

    from tenant_days
    left join daily_logins
        on tenant_days.tenant_id = daily_logins.tenant_id
        and tenant_days.usage_date = daily_logins.usage_date
    left join daily_webinars
        on tenant_days.tenant_id = daily_webinars.tenant_id
        and tenant_days.usage_date = daily_webinars.usage_date
    left join daily_viewing
        on tenant_days.tenant_id = daily_viewing.tenant_id
        and tenant_days.usage_date = daily_viewing.usage_date
    left join daily_features
        on tenant_days.tenant_id = daily_features.tenant_id
        and tenant_days.usage_date = daily_features.usage_date
    left join data_transfer_daily
        on tenant_days.tenant_id = data_transfer_daily.tenant_id
        and tenant_days.usage_date = data_transfer_daily.usage_date
    left join plan_periods
        on tenant_days.tenant_id = plan_periods.tenant_id
        and tenant_days.usage_date >= plan_periods.plan_started_date
        and (
            plan_periods.plan_ended_date is null
            or tenant_days.usage_date < plan_periods.plan_ended_date
        )

),

final as (

    select
        tenant_usage_date_id,
        tenant_id,
        usage_date,
        is_run_date,
        is_in_history,
        is_under_contract,
        had_login,
        cast(logins as integer) as logins,
        cast(active_users as integer) as active_users,
        cast(webinars_held as integer) as webinars_held,
        cast(attendees as integer) as attendees,
        cast(peak_webinar_attendees as integer) as peak_webinar_attendees,
        cast(viewing_sessions as integer) as viewing_sessions,
        cast(watch_minutes as numeric) as watch_minutes,
        cast(feature_events as integer) as feature_events,
        cast(max_feature_tier_rank as integer) as max_feature_tier_rank,
        cast(bytes_transferred as bigint) as bytes_transferred,
        cast(storage_bytes as bigint) as storage_bytes,
        plan_id,
        webinars_per_month_limit,
        attendees_per_webinar_limit,
        storage_gb_limit
    from joined

)

select * from final
