{#
    One row per tenant per business date of the spine: that day's activity, zero on days without any,
    and the plan limits in force that day. Daily values only; the trailing windows are built in
    fct_tenant_daily_usage.

    Incremental: a first build (or --full-refresh) aggregates every spine row. A later run rewrites
      * the usage_recompute_days dates ending on run_date (where late-arriving events land), and
      * any spine row the table does not hold yet, or holds with another is_under_contract (a new tenant, a
        spine reaching further back, a contract date that moved),
    reading only the events on or after the earliest date it rewrites; then it deletes the rows no longer
    on the spine (the day that fell out of the history, a spine that got shorter). Older activity or plan
    changes outside the window are picked up by a --full-refresh. The flags relative to the run date
    (is_run_date, is_in_history) stay on the spine: a row here holds the same values whichever run wrote it.
#}
{{ config(
    materialized='incremental',
    unique_key='tenant_usage_date_id',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
    post_hook="
        delete from {{ this }} as built
        where not exists (
            select 1 from {{ ref('int_tenant_days_spined') }} as spine
            where spine.tenant_usage_date_id = built.tenant_usage_date_id
        )",
) }}
{#- the earliest date this run rewrites: event CTEs read nothing older -#}
{%- set first_date_built = '(select min(usage_date) from tenant_days)' -%}

with

spine as (

    select * from {{ ref('int_tenant_days_spined') }}

),

tenant_days as (

    select spine.*
    from spine
    {% if is_incremental() %}
    left join {{ this }} as built
        on spine.tenant_usage_date_id = built.tenant_usage_date_id
    where spine.usage_date
            > {{ dbt.dateadd('day', -1 * (var('usage_recompute_days') | int), run_date()) }}
        or built.tenant_usage_date_id is null
        or built.is_under_contract is distinct from spine.is_under_contract
    {% endif %}

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
    {% if is_incremental() %}
    where usage_date >= {{ first_date_built }}
    {% endif %}

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
    {% if is_incremental() %}
    where logged_in_date >= {{ first_date_built }}
    {% endif %}
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
    {% if is_incremental() %}
        and webinars.held_date >= {{ first_date_built }}
    {% endif %}
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
    {% if is_incremental() %}
    where joined_date >= {{ first_date_built }}
    {% endif %}
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
    {% if is_incremental() %}
    where feature_events.occurred_date >= {{ first_date_built }}
    {% endif %}

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
        storage_gb_limit,
        {{ computed_at() }} as computed_at
    from joined

)

select * from final
