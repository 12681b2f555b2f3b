-- One row per company and signal active on run_date: the expansion and risk signals the activation stage
-- acts on. started_on is the first day of the signal's current unbroken run of days in
-- int_company_signal_days (a day without the signal ends a run; the next day it holds starts a new one), so
-- it reaches back at most signal_history_days. The key (company_id, signal_key) is stable from day to day
-- while the signal lasts.

with

signal_days as (

    -- the table keeps every date a daily run added; a run reads back signal_history_days, as a full build does
    select * from {{ ref('int_company_signal_days') }}
    where signal_date > {{ dbt.dateadd('day', -1 * (var('signal_history_days') | int), run_date()) }}
        and signal_date <= {{ run_date() }}

),

companies as (

    select * from {{ ref('dim_companies') }}

),

signal_rules as (

    select * from {{ ref('signal_rules') }}

),

runs as (

    -- Consecutive dates minus their rank are constant within an unbroken run.
    select
        company_id,
        signal_key,
        signal_date,
        detail,
        signal_date - cast(row_number() over (
            partition by company_id, signal_key order by signal_date
        ) as integer) as run_key
    from signal_days

),

runs_with_start as (

    select
        *,
        min(signal_date) over (partition by company_id, signal_key, run_key) as started_on
    from runs

),

active_on_run_date as (

    select *
    from runs_with_start
    where signal_date = {{ run_date() }}

),

final as (

    select
        cast({{ generate_surrogate_key(['active_on_run_date.company_id', 'active_on_run_date.signal_key']) }} as text)
            as company_signal_id,
        cast(active_on_run_date.company_id as text) as company_id,
        cast(companies.account_id as text) as account_id,
        cast(companies.company_name as text) as company_name,
        cast(companies.csm_user_id as text) as csm_user_id,
        cast(companies.csm_name as text) as csm_name,
        cast(active_on_run_date.signal_key as text) as signal_key,
        cast(signal_rules.signal_kind as text) as signal_kind,
        cast(signal_rules.signal_name as text) as signal_name,
        cast(signal_rules.signal_name_ja as text) as signal_name_ja,
        cast(active_on_run_date.started_on as date) as started_on,
        cast(active_on_run_date.signal_date - active_on_run_date.started_on + 1 as integer) as days_active,
        cast({{ run_date() }} as date) as as_of_date,
        cast(active_on_run_date.detail as text) as detail,
        cast(signal_rules.suggested_action as text) as suggested_action
    from active_on_run_date
    inner join companies
        on active_on_run_date.company_id = companies.company_id
    inner join signal_rules
        on active_on_run_date.signal_key = signal_rules.signal_key

)

select * from final
