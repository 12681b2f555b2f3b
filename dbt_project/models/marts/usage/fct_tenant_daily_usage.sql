{#
    One row per tenant per business date with trailing-window usage. A window of N days ending on a date
    covers [date - (N - 1), date]. The windows are row frames over the gap-free spine of
    int_tenant_days_spined, which starts early enough (119 extra days) that every kept row's windows are
    complete.

    Incremental by date: a first build (or --full-refresh) writes the usage_history_days dates ending on
    run_date; each later run rewrites only the usage_recompute_days dates ending on its run_date (the last
    few days, where late-arriving rows land). Re-running or backfilling a past date therefore rebuilds
    that date and leaves later dates as they are. A later run reads only the spine rows its frames need
    (the dates it rewrites and the 119 before them), plus each tenant's latest storage reading before
    those, so it writes the same rows a full build computes for those dates. A change to the column list
    stops the run until the history is rebuilt with --full-refresh (contracts allow no silent column sync).
#}
{{ config(
    materialized='incremental',
    unique_key='tenant_usage_date_id',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}
{%- set trailing_30d = "over (partition by tenant_id order by usage_date rows between 29 preceding and current row)" -%}
{%- set trailing_60d = "over (partition by tenant_id order by usage_date rows between 59 preceding and current row)" -%}
{%- set trailing_90d = "over (partition by tenant_id order by usage_date rows between 89 preceding and current row)" -%}
{%- set prior_90d = "over (partition by tenant_id order by usage_date rows between 119 preceding and 30 preceding)" -%}
{%- set to_date = "over (partition by tenant_id order by usage_date rows between unbounded preceding and current row)" -%}
{#- the longest frame (prior_90d) reaches this many rows back -#}
{%- set lookback_days = 119 -%}
{%- set frames_start = dbt.dateadd('day', -1 * ((var('usage_recompute_days') | int) + lookback_days), run_date()) -%}

with

tenant_days as (

    select * from {{ ref('int_tenant_daily_activity_aggregated') }}
    {% if is_incremental() %}
    where usage_date > {{ frames_start }}
    {% endif %}

),

{% if is_incremental() %}
-- each tenant's latest storage reading on the spine before the rows read: a full build carries it forward
storage_before_frames as (

    select distinct on (tenant_id)
        tenant_id,
        storage_bytes
    from {{ ref('int_tenant_daily_activity_aggregated') }}
    where usage_date <= {{ frames_start }}
        and storage_bytes is not null
    order by tenant_id, usage_date desc

),
{% endif %}

feature_tiers as (

    select * from {{ ref('feature_tiers') }}

),

windowed as (

    select
        tenant_usage_date_id,
        tenant_id,
        usage_date,
        is_under_contract,
        plan_id,
        webinars_per_month_limit,
        attendees_per_webinar_limit,
        storage_gb_limit,

        had_login,
        webinars_held,
        attendees,
        watch_minutes,
        bytes_transferred,
        storage_bytes,

        sum(case when had_login then 1 else 0 end) {{ trailing_30d }} as login_days_30d,
        sum(case when had_login then 1 else 0 end) {{ trailing_60d }} as login_days_60d,
        sum(case when had_login then 1 else 0 end) {{ trailing_90d }} as login_days_90d,

        sum(webinars_held) {{ trailing_30d }} as webinars_held_30d,
        sum(webinars_held) {{ trailing_60d }} as webinars_held_60d,
        sum(webinars_held) {{ trailing_90d }} as webinars_held_90d,

        sum(attendees) {{ trailing_30d }} as attendees_30d,
        sum(attendees) {{ trailing_60d }} as attendees_60d,
        sum(attendees) {{ trailing_90d }} as attendees_90d,
        coalesce(sum(attendees) {{ prior_90d }}, 0) as attendees_prior_90d,
        max(peak_webinar_attendees) {{ trailing_30d }} as peak_webinar_attendees_30d,

        sum(watch_minutes) {{ trailing_30d }} as watch_minutes_30d,
        sum(watch_minutes) {{ trailing_60d }} as watch_minutes_60d,
        sum(watch_minutes) {{ trailing_90d }} as watch_minutes_90d,

        sum(bytes_transferred) {{ trailing_30d }} as bytes_transferred_30d,
        sum(bytes_transferred) {{ trailing_60d }} as bytes_transferred_60d,
        sum(bytes_transferred) {{ trailing_90d }} as bytes_transferred_90d,

        max(max_feature_tier_rank) {{ trailing_30d }} as feature_depth_rank_30d,

        -- numbers the days since the last storage reading, so the reading can be carried forward
        count(storage_bytes) {{ to_date }} as storage_reading_number

    from tenant_days

),

storage_carried_forward as (

    select
        windowed.*,
        {% if is_incremental() -%}
        coalesce(
            max(windowed.storage_bytes) over (partition by windowed.tenant_id, windowed.storage_reading_number),
            storage_before_frames.storage_bytes
        ) as latest_storage_bytes
        {%- else -%}
        max(windowed.storage_bytes) over (
            partition by windowed.tenant_id, windowed.storage_reading_number
        ) as latest_storage_bytes
        {%- endif %}
    from windowed
    {% if is_incremental() %}
    left join storage_before_frames
        on windowed.tenant_id = storage_before_frames.tenant_id
    {% endif %}

),

final as (

    select
        -- keys
        cast(storage_carried_forward.tenant_usage_date_id as text) as tenant_usage_date_id,
        cast(storage_carried_forward.tenant_id as bigint) as tenant_id,
        cast(storage_carried_forward.usage_date as date) as usage_date,
        cast(storage_carried_forward.plan_id as integer) as plan_id,

        -- flags
        cast(storage_carried_forward.is_under_contract as boolean) as is_under_contract,

        -- that day
        cast(storage_carried_forward.had_login as boolean) as had_login,
        cast(storage_carried_forward.webinars_held as integer) as webinars_held,
        cast(storage_carried_forward.attendees as integer) as attendees,
        cast(storage_carried_forward.watch_minutes as numeric(18, 2)) as watch_minutes,
        cast(storage_carried_forward.bytes_transferred as bigint) as bytes_transferred,

        -- trailing windows
        cast(storage_carried_forward.login_days_30d as integer) as login_days_30d,
        cast(storage_carried_forward.login_days_60d as integer) as login_days_60d,
        cast(storage_carried_forward.login_days_90d as integer) as login_days_90d,
        cast(storage_carried_forward.webinars_held_30d as integer) as webinars_held_30d,
        cast(storage_carried_forward.webinars_held_60d as integer) as webinars_held_60d,
        cast(storage_carried_forward.webinars_held_90d as integer) as webinars_held_90d,
        cast(storage_carried_forward.attendees_30d as integer) as attendees_30d,
        cast(storage_carried_forward.attendees_60d as integer) as attendees_60d,
        cast(storage_carried_forward.attendees_90d as integer) as attendees_90d,
        cast(storage_carried_forward.attendees_prior_90d as integer) as attendees_prior_90d,
        cast(
            storage_carried_forward.attendees_30d
            / nullif(cast(storage_carried_forward.attendees_prior_90d as numeric) / 3, 0)
            as numeric(12, 4)
        ) as attendee_trend_ratio,
        cast(storage_carried_forward.peak_webinar_attendees_30d as integer) as peak_webinar_attendees_30d,
        cast(storage_carried_forward.watch_minutes_30d as numeric(18, 2)) as watch_minutes_30d,
        cast(storage_carried_forward.watch_minutes_60d as numeric(18, 2)) as watch_minutes_60d,
        cast(storage_carried_forward.watch_minutes_90d as numeric(18, 2)) as watch_minutes_90d,
        cast(storage_carried_forward.bytes_transferred_30d as bigint) as bytes_transferred_30d,
        cast(storage_carried_forward.bytes_transferred_60d as bigint) as bytes_transferred_60d,
        cast(storage_carried_forward.bytes_transferred_90d as bigint) as bytes_transferred_90d,
        cast({{ bytes_to_gb('storage_carried_forward.bytes_transferred_30d') }} as numeric(18, 3)) as gb_transferred_30d,
        cast({{ bytes_to_gb('storage_carried_forward.bytes_transferred_60d') }} as numeric(18, 3)) as gb_transferred_60d,
        cast({{ bytes_to_gb('storage_carried_forward.bytes_transferred_90d') }} as numeric(18, 3)) as gb_transferred_90d,

        -- feature depth
        cast(storage_carried_forward.feature_depth_rank_30d as integer) as feature_depth_rank_30d,
        cast(feature_tiers.feature_tier as text) as feature_depth_tier_30d,

        -- storage: the latest reading on or before the date
        cast(storage_carried_forward.latest_storage_bytes as bigint) as latest_storage_bytes,
        cast({{ bytes_to_gb('storage_carried_forward.latest_storage_bytes') }} as numeric(18, 3)) as latest_storage_gb,

        -- plan limits in force that day, and how much of them is used
        cast(storage_carried_forward.webinars_per_month_limit as integer) as webinars_per_month_limit,
        cast(storage_carried_forward.attendees_per_webinar_limit as integer) as attendees_per_webinar_limit,
        cast(storage_carried_forward.storage_gb_limit as integer) as storage_gb_limit,
        cast(
            storage_carried_forward.webinars_held_30d
            / nullif(cast(storage_carried_forward.webinars_per_month_limit as numeric), 0)
            as numeric(12, 4)
        ) as webinar_limit_utilisation_30d,
        cast(
            storage_carried_forward.peak_webinar_attendees_30d
            / nullif(cast(storage_carried_forward.attendees_per_webinar_limit as numeric), 0)
            as numeric(12, 4)
        ) as attendee_limit_utilisation_30d,
        cast(
            storage_carried_forward.latest_storage_bytes
            / nullif({{ gb_to_bytes('cast(storage_carried_forward.storage_gb_limit as numeric)') }}, 0)
            as numeric(12, 4)
        ) as storage_limit_utilisation,

        -- lineage: the run that wrote the row
        cast({{ run_date() }} as date) as computed_for_run_date,
        {{ computed_at() }} as computed_at

    from storage_carried_forward
    left join feature_tiers
        on storage_carried_forward.feature_depth_rank_30d = feature_tiers.feature_tier_rank
    -- the usage_history_days dates ending on run_date; the earlier spine rows only feed the windows
    where storage_carried_forward.usage_date
        > {{ dbt.dateadd('day', -1 * (var('usage_history_days') | int), run_date()) }}
    {% if is_incremental() %}
        and storage_carried_forward.usage_date
            > {{ dbt.dateadd('day', -1 * (var('usage_recompute_days') | int), run_date()) }}
        and storage_carried_forward.usage_date <= {{ run_date() }}
    {% endif %}

)

select * from final
