{#
    One row per company per business date on which it is a customer: the eight indicator values and
    scores, the weighted total, coverage, category sub-scores, the computed status, a CSM's override
    while it is in force, the effective status and how long it has held, and the reasons that pull the
    score down. Every weight, threshold and band comes from the rubric seeds (seeds/health/).

    Incremental, anchored on run_date: a first build (or --full-refresh) writes the health_history_days
    dates ending on run_date; a later run writes its run_date only, replacing whatever that date held
    (so re-running or backfilling a past date rewrites that date and leaves the others). The previous
    status, transition, status_since and days_in_status come from the company's latest earlier scored
    date: from this table on an incremental run, from the rows being written on a full build.

    Each row carries the rubric version it was computed with (health_rubric_versions: the hash of the rubric
    seeds and their label). When a company's previous row was computed with another rubric (a daily run after
    the rubric seeds changed), the day is also scored under that previous rubric
    (macros/health_rubric.sql): a status change that the previous rubric would not have made, because it gives
    the previous status on the same day's values, has status_change_cause 'rubric_change'; every other status
    change 'customer_change'. A full build computes every row with the rubric the seeds hold, so its rows
    have one version and no rubric change.
#}
-- depends_on: {{ ref('int_health_measures') }} (read by health_scores_under_rubrics() on a daily run)
{{ config(
    materialized='incremental',
    unique_key='score_date',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}

with

indicator_values as (

    select * from {{ ref('int_health_indicator_values') }}

),

indicator_scores as (

    select * from {{ ref('int_health_indicator_scores') }}
    {% if is_incremental() %}
    where score_date = {{ run_date() }}
    {% endif %}

),

status_bands as (

    select * from {{ ref('health_status_bands') }}

),

settings as (

    select * from {{ ref('health_settings') }}

),

overrides as (

    select * from {{ ref('int_health_status_overrides') }}

),

current_rubric as (

    select * from {{ ref('int_health_rubric') }}

),

rubric_versions as (

    select * from {{ ref('health_rubric_versions') }}

),

company_days as (

    select *
    from indicator_values
    {% if is_incremental() %}
    where score_date = {{ run_date() }}
    {% endif %}

),

ranked_reasons as (

    select
        indicator_scores.*,
        row_number() over (
            partition by indicator_scores.company_id, indicator_scores.score_date
            order by indicator_scores.weighted_shortfall desc, indicator_scores.display_order
        ) as reason_rank
    from indicator_scores
    inner join company_days
        on indicator_scores.company_id = company_days.company_id
        and indicator_scores.score_date = company_days.score_date

),

totals as (

    select
        company_id,
        score_date,
        {%- for indicator in ['login_days', 'webinars_held', 'feature_depth', 'goal_achievement',
                              'attendee_trend', 'touchpoints', 'key_persons', 'renewal'] %}
        max(score) filter (where indicator_key = '{{ indicator }}') as {{ indicator }}_score,
        {%- endfor %}
        sum(score * weight) / nullif(sum(weight), 0) as total_score,
        sum(weight) as coverage,
        {%- for category in ['usage', 'outcome', 'relationship', 'contract'] %}
        sum(score * weight) filter (where category = '{{ category }}')
            / nullif(sum(weight) filter (where category = '{{ category }}'), 0) as {{ category }}_score,
        {%- endfor %}
        string_agg(reason, '; ' order by reason_rank) filter (
            where reason_rank <= 3 and weighted_shortfall > 0
        ) as top_reasons,
        string_agg(reason_ja, '; ' order by reason_rank) filter (
            where reason_rank <= 3 and weighted_shortfall > 0
        ) as top_reasons_ja
    from ranked_reasons
    group by company_id, score_date

),

scored as (

    select
        company_days.*,
        {%- for indicator in ['login_days', 'webinars_held', 'feature_depth', 'goal_achievement',
                              'attendee_trend', 'touchpoints', 'key_persons', 'renewal'] %}
        totals.{{ indicator }}_score,
        {%- endfor %}
        round(totals.total_score, 2) as total_score,
        coalesce(totals.coverage, 0) as coverage,
        coalesce(totals.coverage, 0) < (
            select cast(settings.setting_value as numeric) from settings
            where settings.setting_key = 'low_coverage_below'
        ) as is_low_coverage,
        round(totals.usage_score, 2) as usage_score,
        round(totals.outcome_score, 2) as outcome_score,
        round(totals.relationship_score, 2) as relationship_score,
        round(totals.contract_score, 2) as contract_score,
        totals.top_reasons,
        totals.top_reasons_ja
    from company_days
    left join totals
        on company_days.company_id = totals.company_id
        and company_days.score_date = totals.score_date

),

-- the band whose minimum the rounded total reaches, the highest such band
with_computed_status as (

    select
        scored.*,
        (
            select status_bands.health_status
            from status_bands
            where status_bands.min_total_score <= scored.total_score
            order by status_bands.min_total_score desc
            limit 1
        ) as computed_status
    from scored

),

-- the override in force that day: set on or before it, expiring on or after it; the latest set wins
overrides_in_force as (

    select distinct on (with_computed_status.company_id, with_computed_status.score_date)
        with_computed_status.company_id,
        with_computed_status.score_date,
        overrides.override_status,
        overrides.override_reason,
        overrides.expires_on as override_expires_on
    from with_computed_status
    inner join overrides
        on with_computed_status.company_id = overrides.company_id
        and with_computed_status.score_date between overrides.set_on and overrides.expires_on
    order by
        with_computed_status.company_id,
        with_computed_status.score_date,
        overrides.set_on desc,
        overrides.expires_on desc,
        overrides.override_id

),

with_status as (

    select
        with_computed_status.*,
        overrides_in_force.override_status,
        overrides_in_force.override_reason,
        overrides_in_force.override_expires_on,
        coalesce(overrides_in_force.override_status, with_computed_status.computed_status) as health_status
    from with_computed_status
    left join overrides_in_force
        on with_computed_status.company_id = overrides_in_force.company_id
        and with_computed_status.score_date = overrides_in_force.score_date

),

{% if is_incremental() %}

-- each company's latest earlier scored date, as this table holds it
previous_rows as (

    select distinct on (company_id)
        company_id,
        health_status,
        status_since,
        days_in_status,
        rubric_hash
    from {{ this }}
    where score_date < {{ run_date() }}
    order by company_id, score_date desc

),

with_history as (

    select
        with_status.*,
        previous_rows.health_status as previous_health_status,
        -- the rubric of the previous row, when it is not the one this run scores with
        case
            when previous_rows.rubric_hash <> (select current_rubric.rubric_hash from current_rubric)
                then previous_rows.rubric_hash
        end as previous_rubric_hash,
        case
            when previous_rows.health_status is not distinct from with_status.health_status
                and previous_rows.company_id is not null
                then previous_rows.status_since
            else with_status.score_date
        end as status_since,
        case
            when previous_rows.health_status is not distinct from with_status.health_status
                and previous_rows.company_id is not null
                then previous_rows.days_in_status + 1
            else 1
        end as days_in_status
    from with_status
    left join previous_rows
        on with_status.company_id = previous_rows.company_id

),

-- the company-days whose previous row was computed with another rubric: scored again under that rubric
rescore_targets as (

    select
        company_id,
        score_date,
        previous_rubric_hash as rubric_hash
    from with_history
    where previous_rubric_hash is not null

),

{{ health_scores_under_rubrics('rescore_targets', 'rubric_versions', 'previous_rubric_scores', run_date()) }}

with_rubric as (

    select
        with_history.*,
        previous_rubric_scores.total_score as total_score_previous_rubric,
        -- the effective status under the previous rubric: an override in force wins, as it does today
        case
            when with_history.previous_rubric_hash is not null
                then coalesce(with_history.override_status, previous_rubric_scores.computed_status)
        end as health_status_previous_rubric
    from with_history
    left join previous_rubric_scores
        on with_history.company_id = previous_rubric_scores.company_id
        and with_history.score_date = previous_rubric_scores.score_date

),

{% else %}

-- the company's previous scored date among the rows written, and runs of one status (a new run starts
-- on the first row and whenever the status changes)
with_previous as (

    select
        with_status.*,
        lag(with_status.health_status) over by_date as previous_health_status,
        row_number() over by_date = 1 as is_first_row
    from with_status
    window by_date as (partition by with_status.company_id order by with_status.score_date)

),

status_runs as (

    select
        with_previous.*,
        sum(
            case when is_first_row or previous_health_status is distinct from health_status then 1 else 0 end
        ) over (
            partition by with_previous.company_id order by with_previous.score_date rows unbounded preceding
        ) as status_run
    from with_previous

),

with_history as (

    select
        status_runs.*,
        min(status_runs.score_date) over same_run as status_since,
        row_number() over (same_run order by status_runs.score_date) as days_in_status
    from status_runs
    window same_run as (partition by status_runs.company_id, status_runs.status_run)

),

-- a full build computes every row with one rubric: no row has a previous rubric
with_rubric as (

    select
        with_history.*,
        cast(null as text) as previous_rubric_hash,
        cast(null as numeric) as total_score_previous_rubric,
        cast(null as text) as health_status_previous_rubric
    from with_history

),

{% endif %}

final as (

    select
        -- keys
        cast({{ generate_surrogate_key(['company_id', 'score_date']) }} as text) as health_score_id,
        cast(company_id as text) as company_id,
        cast(account_id as text) as account_id,
        cast(tenant_id as bigint) as tenant_id,
        cast(score_date as date) as score_date,

        -- who, for people and BI tools: the names as of the run that wrote the row
        cast(company_name as text) as company_name,
        cast(csm_user_id as text) as csm_user_id,
        cast(csm_name as text) as csm_name,

        -- indicator values
        cast(login_days_30d as integer) as login_days_30d,
        cast(webinars_held_30d as integer) as webinars_held_30d,
        cast(feature_depth_tier_30d as text) as feature_depth_tier_30d,
        cast(active_goals as integer) as active_goals,
        cast(goal_achievement_rate as numeric(8, 4)) as goal_achievement_rate,
        cast(attendee_trend_ratio as numeric(12, 4)) as attendee_trend_ratio,
        cast(touchpoints_30d as integer) as touchpoints_30d,
        cast(touchpoints_60d as integer) as touchpoints_60d,
        cast(key_persons as integer) as key_persons,
        cast(next_renewal_date as date) as next_renewal_date,
        cast(months_to_renewal as integer) as months_to_renewal,

        -- indicator scores: 3 Green, 2 Yellow, 1 Red, null without data
        cast(login_days_score as integer) as login_days_score,
        cast(webinars_held_score as integer) as webinars_held_score,
        cast(feature_depth_score as integer) as feature_depth_score,
        cast(goal_achievement_score as integer) as goal_achievement_score,
        cast(attendee_trend_score as integer) as attendee_trend_score,
        cast(touchpoints_score as integer) as touchpoints_score,
        cast(key_persons_score as integer) as key_persons_score,
        cast(renewal_score as integer) as renewal_score,

        -- total and categories
        cast(total_score as numeric(4, 2)) as total_score,
        cast(coverage as numeric(6, 4)) as coverage,
        cast(is_low_coverage as boolean) as is_low_coverage,
        cast(usage_score as numeric(4, 2)) as usage_score,
        cast(outcome_score as numeric(4, 2)) as outcome_score,
        cast(relationship_score as numeric(4, 2)) as relationship_score,
        cast(contract_score as numeric(4, 2)) as contract_score,

        -- status
        cast(computed_status as text) as computed_status,
        cast(override_status as text) as override_status,
        cast(override_reason as text) as override_reason,
        cast(override_expires_on as date) as override_expires_on,
        cast(health_status as text) as health_status,
        cast(previous_health_status as text) as previous_health_status,
        cast(
            case
                when previous_health_status is distinct from health_status and previous_health_status is not null
                    then previous_health_status || '→' || coalesce(health_status, 'none')
            end
            as text
        ) as status_transition,
        cast(status_since as date) as status_since,
        cast(days_in_status as integer) as days_in_status,
        cast(top_reasons as text) as top_reasons,
        cast(top_reasons_ja as text) as top_reasons_ja,

        -- the rubric: the version this row was computed with and, when the company's previous row had
        -- another one, that version's answer for the same day and what caused a status change
        cast((select current_rubric.rubric_hash from current_rubric) as text) as rubric_hash,
        cast((select current_rubric.rubric_version from current_rubric) as text) as rubric_version,
        cast(previous_rubric_hash as text) as previous_rubric_hash,
        cast(
            (select rubric_versions.rubric_version from rubric_versions
             where rubric_versions.rubric_hash = with_rubric.previous_rubric_hash)
            as text
        ) as previous_rubric_version,
        cast(total_score_previous_rubric as numeric(4, 2)) as total_score_previous_rubric,
        cast(health_status_previous_rubric as text) as health_status_previous_rubric,
        cast(
            case
                when previous_health_status is not distinct from health_status or previous_health_status is null
                    then null
                when previous_rubric_hash is not null
                    and health_status_previous_rubric is not distinct from previous_health_status
                    then 'rubric_change'
                else 'customer_change'
            end
            as text
        ) as status_change_cause,

        -- lineage: the run that wrote the row
        cast({{ run_date() }} as date) as computed_for_run_date,
        {{ computed_at() }} as computed_at

    from with_rubric

)

select * from final
