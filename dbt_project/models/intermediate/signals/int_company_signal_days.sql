{#
    One row per company, signal and business date on which the signal's rule held, over the
    signal_history_days dates ending on run_date: the daily history fct_company_signals reads a signal's
    unbroken run (and so its started_on) from. Each day is judged only on facts dated on or before it. Rules,
    thresholds and windows come from the signal_rules seed; a company is only judged on days it is a
    customer (its tenant's plan in force; without a tenant, an account of Type Customer whose contract has
    started).

    Incremental, anchored on run_date like fct_health_scores: a first build (or --full-refresh) judges the
    signal_history_days dates ending on run_date; a later run judges its run_date only, replacing whatever
    that date held. Every date is judged on its own, so a daily run adds the rows a full build would compute
    for that date. Dates older than signal_history_days stay in the table; fct_company_signals reads only
    the last signal_history_days.
#}
{{ config(
    materialized='incremental',
    unique_key='signal_date',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}
{%- set history_days = 1 if is_incremental() else var('signal_history_days') | int -%}

with

companies as (

    select * from {{ ref('dim_companies') }}

),

usage as (

    -- the dates judged, no more: three rules read this, so Postgres keeps its rows aside
    select * from {{ ref('fct_tenant_daily_usage') }}
    where usage_date > {{ dbt.dateadd('day', -1 * history_days, run_date()) }}
        and usage_date <= {{ run_date() }}

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

nps_responses as (

    select * from {{ ref('stg_nexpro__nps_responses') }}

),

outcome_goals as (

    select * from {{ ref('stg_salesforce__outcome_goals') }}

),

results_in_force as (

    select * from {{ ref('int_outcome_results_in_force') }}

),

contacts as (

    select * from {{ ref('stg_salesforce__contacts') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

onboarding as (

    select * from {{ ref('int_company_onboarding_milestones') }}

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

signal_rules as (

    select * from {{ ref('signal_rules') }}

),

day_numbers as (

    {{ dbt.generate_series(history_days) }}

),

signal_days as (

    select cast({{ dbt.dateadd('day', '1 - generated_number', run_date()) }} as date) as signal_date
    from day_numbers

),

customer_days as (

    select
        companies.company_id,
        usage.usage_date as signal_date
    from companies
    inner join usage
        on companies.tenant_id = usage.tenant_id
    inner join signal_days
        on usage.usage_date = signal_days.signal_date
    where usage.is_under_contract

    union all

    select
        companies.company_id,
        signal_days.signal_date
    from companies
    inner join signal_days
        on companies.contract_start_date <= signal_days.signal_date
    where companies.tenant_id is null
        and companies.account_type = 'Customer'

),

-- usage ≥ threshold of a plan limit: webinars held in 30 days, the best-attended webinar of 30 days, storage
usage_near_plan_limit as (

    select
        companies.company_id,
        usage.usage_date as signal_date,
        concat_ws('; ',
            case when usage.webinar_limit_utilisation_30d >= signal_rules.threshold then
                'webinars held in 30 days: ' || usage.webinars_held_30d || ' of ' || usage.webinars_per_month_limit
                || ' (' || round(100 * usage.webinar_limit_utilisation_30d) || '% of the plan limit)' end,
            case when usage.attendee_limit_utilisation_30d >= signal_rules.threshold then
                'best-attended webinar in 30 days: ' || usage.peak_webinar_attendees_30d || ' of '
                || usage.attendees_per_webinar_limit || ' attendees ('
                || round(100 * usage.attendee_limit_utilisation_30d) || '% of the plan limit)' end,
            case when usage.storage_limit_utilisation >= signal_rules.threshold then
                'storage: ' || round(usage.latest_storage_gb, 1) || ' of ' || usage.storage_gb_limit || ' GB ('
                || round(100 * usage.storage_limit_utilisation) || '% of the plan limit)' end
        ) as detail
    from companies
    inner join usage
        on companies.tenant_id = usage.tenant_id
    inner join signal_days
        on usage.usage_date = signal_days.signal_date
    inner join signal_rules
        on signal_rules.signal_key = 'usage_near_plan_limit'
    where usage.webinar_limit_utilisation_30d >= signal_rules.threshold
        or usage.attendee_limit_utilisation_30d >= signal_rules.threshold
        or usage.storage_limit_utilisation >= signal_rules.threshold

),

-- the latest result of a goal not past its end date reached the threshold (1.00 = 100% of the target)
outcome_goal_achieved as (

    select
        account_companies.company_id,
        signal_days.signal_date,
        string_agg(
            outcome_goals.outcome_goal_name || ': ' || round(100 * results_in_force.achievement_rate)
            || '% of the target in ' || to_char(results_in_force.period_month, 'YYYY-MM'),
            '; ' order by outcome_goals.outcome_goal_name
        ) as detail
    from results_in_force
    inner join outcome_goals
        on results_in_force.outcome_goal_id = outcome_goals.outcome_goal_id
    inner join account_companies
        on results_in_force.account_id = account_companies.account_id
    inner join signal_rules
        on signal_rules.signal_key = 'outcome_goal_achieved'
    inner join signal_days
        on signal_days.signal_date >= results_in_force.entered_on
        and (results_in_force.superseded_on is null or signal_days.signal_date < results_in_force.superseded_on)
        and (outcome_goals.end_date is null or signal_days.signal_date <= outcome_goals.end_date)
    where results_in_force.achievement_rate >= signal_rules.threshold
    group by account_companies.company_id, signal_days.signal_date

),

-- one feature of at least tier rank min_base used on at least threshold distinct days of the window
feature_days as (

    select distinct
        feature_events.tenant_id,
        feature_events.feature_key,
        feature_catalog.feature_name,
        feature_events.occurred_date
    from feature_events
    inner join feature_catalog
        on feature_events.feature_key = feature_catalog.feature_key
    inner join feature_tiers
        on feature_catalog.feature_tier = feature_tiers.feature_tier
    inner join signal_rules
        on signal_rules.signal_key = 'feature_heavy_use'
    where feature_tiers.feature_tier_rank >= signal_rules.min_base
        and feature_events.occurred_date <= {{ run_date() }}
        -- older days fall outside the window of every date judged
        and feature_events.occurred_date
            > {{ dbt.dateadd('day', '-1 * (signal_rules.window_days + ' ~ (history_days - 1) ~ ')', run_date()) }}

),

feature_use_in_window as (

    select
        feature_days.tenant_id,
        feature_days.feature_name,
        signal_days.signal_date,
        count(*) as days_used
    from feature_days
    inner join signal_rules
        on signal_rules.signal_key = 'feature_heavy_use'
    inner join signal_days
        on feature_days.occurred_date <= signal_days.signal_date
        and feature_days.occurred_date > {{ dbt.dateadd('day', '-1 * signal_rules.window_days', 'signal_days.signal_date') }}
    group by feature_days.tenant_id, feature_days.feature_name, signal_days.signal_date, signal_rules.threshold
    having count(*) >= signal_rules.threshold

),

feature_heavy_use as (

    select
        companies.company_id,
        feature_use_in_window.signal_date,
        string_agg(
            feature_use_in_window.feature_name || ' used on ' || feature_use_in_window.days_used || ' of the last '
            || signal_rules.window_days || ' days',
            '; ' order by feature_use_in_window.days_used desc, feature_use_in_window.feature_name
        ) as detail
    from feature_use_in_window
    inner join companies
        on feature_use_in_window.tenant_id = companies.tenant_id
    inner join signal_rules
        on signal_rules.signal_key = 'feature_heavy_use'
    group by companies.company_id, feature_use_in_window.signal_date

),

-- the company's latest in-app NPS answer, given within the window, scored at least the threshold
nps_in_force as (

    select
        tenant_id,
        nps_score,
        responded_date,
        lead(responded_date) over (partition by tenant_id order by responded_at, nps_response_id)
            as next_responded_date,
        row_number() over (partition by tenant_id, responded_date order by responded_at desc, nps_response_id desc)
            as answer_of_day
    from nps_responses

),

nps_promoter as (

    select
        companies.company_id,
        signal_days.signal_date,
        'latest NPS answer ' || nps_in_force.nps_score || ' on ' || nps_in_force.responded_date as detail
    from nps_in_force
    inner join companies
        on nps_in_force.tenant_id = companies.tenant_id
    inner join signal_rules
        on signal_rules.signal_key = 'nps_promoter'
    inner join signal_days
        on signal_days.signal_date >= nps_in_force.responded_date
        and (nps_in_force.next_responded_date is null or signal_days.signal_date < nps_in_force.next_responded_date)
        and signal_days.signal_date < {{ dbt.dateadd('day', 'signal_rules.window_days', 'nps_in_force.responded_date') }}
    where nps_in_force.answer_of_day = 1
        and nps_in_force.nps_score >= signal_rules.threshold

),

-- the next renewal is less than threshold days away and the health status is Yellow or Red
renewal_soon_not_green as (

    select
        health_scores.company_id,
        health_scores.score_date as signal_date,
        'renewal on ' || health_scores.next_renewal_date || ', in '
            || (health_scores.next_renewal_date - health_scores.score_date) || ' days; health '
            || health_scores.health_status || ' (total ' || health_scores.total_score || ')' as detail
    from health_scores
    inner join signal_days
        on health_scores.score_date = signal_days.signal_date
    inner join signal_rules
        on signal_rules.signal_key = 'renewal_soon_not_green'
    where health_scores.health_status in ('Yellow', 'Red')
        and health_scores.next_renewal_date >= health_scores.score_date
        and health_scores.next_renewal_date - health_scores.score_date < signal_rules.threshold

),

-- key-person contacts made inactive within the window. Salesforce keeps only a contact's current state, so
-- the day it was made inactive is its last modification.
key_persons_lost as (

    select
        account_companies.company_id,
        contacts.contact_name,
        contacts.title,
        {{ to_business_date('contacts.updated_at') }} as lost_date
    from contacts
    inner join account_companies
        on contacts.account_id = account_companies.account_id
    where contacts.is_key_person
        and not contacts.is_active

),

key_person_lost as (

    select
        key_persons_lost.company_id,
        signal_days.signal_date,
        count(*) || case when count(*) = 1 then ' key person' else ' key persons' end
            || ' made inactive in the last ' || signal_rules.window_days || ' days: '
            || string_agg(
                key_persons_lost.contact_name || coalesce(' (' || key_persons_lost.title || ')', '')
                || ' on ' || key_persons_lost.lost_date,
                ', ' order by key_persons_lost.lost_date, key_persons_lost.contact_name
            ) as detail
    from key_persons_lost
    inner join signal_rules
        on signal_rules.signal_key = 'key_person_lost'
    inner join signal_days
        on signal_days.signal_date >= key_persons_lost.lost_date
        and signal_days.signal_date < {{ dbt.dateadd('day', 'signal_rules.window_days', 'key_persons_lost.lost_date') }}
    group by key_persons_lost.company_id, signal_days.signal_date, signal_rules.window_days, signal_rules.threshold
    having count(*) >= signal_rules.threshold

),

-- login days or attendees of the last 30 days at most threshold × the 30 days before (a base of min_base)
usage_windows as (

    select
        companies.company_id,
        usage.usage_date as signal_date,
        usage.login_days_30d,
        usage.login_days_60d - usage.login_days_30d as login_days_prior_30d,
        usage.attendees_30d,
        usage.attendees_60d - usage.attendees_30d as attendees_prior_30d
    from companies
    inner join usage
        on companies.tenant_id = usage.tenant_id
    inner join signal_days
        on usage.usage_date = signal_days.signal_date

),

usage_drop as (

    select
        usage_windows.company_id,
        usage_windows.signal_date,
        concat_ws('; ',
            case when usage_windows.login_days_prior_30d >= signal_rules.min_base
                and usage_windows.login_days_30d <= signal_rules.threshold * usage_windows.login_days_prior_30d then
                'login days ' || usage_windows.login_days_30d || ' in the last 30 days against '
                || usage_windows.login_days_prior_30d || ' in the 30 before' end,
            case when usage_windows.attendees_prior_30d >= signal_rules.min_base
                and usage_windows.attendees_30d <= signal_rules.threshold * usage_windows.attendees_prior_30d then
                'attendees ' || usage_windows.attendees_30d || ' in the last 30 days against '
                || usage_windows.attendees_prior_30d || ' in the 30 before' end
        ) as detail
    from usage_windows
    inner join signal_rules
        on signal_rules.signal_key = 'usage_drop'
    where (usage_windows.login_days_prior_30d >= signal_rules.min_base
            and usage_windows.login_days_30d <= signal_rules.threshold * usage_windows.login_days_prior_30d)
        or (usage_windows.attendees_prior_30d >= signal_rules.min_base
            and usage_windows.attendees_30d <= signal_rules.threshold * usage_windows.attendees_prior_30d)

),

-- threshold days or more after the contract start, within the window, the criteria are not all met
onboarding_stalled as (

    select
        onboarding.company_id,
        signal_days.signal_date,
        'day ' || (signal_days.signal_date - onboarding.contract_start_date) || ' after the contract start ('
            || onboarding.contract_start_date || '); not yet: '
            || concat_ws(', ',
                case when onboarding.first_webinar_date is null or onboarding.first_webinar_date > signal_days.signal_date
                    then 'a webinar held with attendees' end,
                case when onboarding.login_days_reached_date is null
                        or onboarding.login_days_reached_date > signal_days.signal_date
                    then 'enough login days' end,
                case when onboarding.feature_tried_date is null or onboarding.feature_tried_date > signal_days.signal_date
                    then 'an advanced feature tried' end,
                case when onboarding.outcome_goal_set_date is null
                        or onboarding.outcome_goal_set_date > signal_days.signal_date
                    then 'an outcome goal set' end
            ) as detail
    from onboarding
    inner join signal_rules
        on signal_rules.signal_key = 'onboarding_stalled'
    inner join signal_days
        on signal_days.signal_date >= {{ dbt.dateadd('day', 'signal_rules.threshold', 'onboarding.contract_start_date') }}
        and signal_days.signal_date <= {{ dbt.dateadd('day', 'signal_rules.window_days', 'onboarding.contract_start_date') }}
    where onboarding.completed_date is null
        or onboarding.completed_date > signal_days.signal_date

),

all_signal_days as (

    select company_id, signal_date, 'usage_near_plan_limit' as signal_key, detail from usage_near_plan_limit
    union all
    select company_id, signal_date, 'outcome_goal_achieved', detail from outcome_goal_achieved
    union all
    select company_id, signal_date, 'feature_heavy_use', detail from feature_heavy_use
    union all
    select company_id, signal_date, 'nps_promoter', detail from nps_promoter
    union all
    select company_id, signal_date, 'renewal_soon_not_green', detail from renewal_soon_not_green
    union all
    select company_id, signal_date, 'key_person_lost', detail from key_person_lost
    union all
    select company_id, signal_date, 'usage_drop', detail from usage_drop
    union all
    select company_id, signal_date, 'onboarding_stalled', detail from onboarding_stalled

),

final as (

    select
        cast({{ generate_surrogate_key(['all_signal_days.company_id', 'all_signal_days.signal_key', 'all_signal_days.signal_date']) }} as text)
            as company_signal_day_id,
        cast(all_signal_days.company_id as text) as company_id,
        cast(all_signal_days.signal_key as text) as signal_key,
        cast(signal_rules.signal_kind as text) as signal_kind,
        cast(all_signal_days.signal_date as date) as signal_date,
        cast(all_signal_days.detail as text) as detail,
        {{ computed_at() }} as computed_at
    from all_signal_days
    inner join customer_days
        on all_signal_days.company_id = customer_days.company_id
        and all_signal_days.signal_date = customer_days.signal_date
    inner join signal_rules
        on all_signal_days.signal_key = signal_rules.signal_key

)

select * from final
