{#
    One row per company per business date on which it is a customer, for the health_history_days dates
    ending on run_date: the company-days the health score is computed for.

    - A company with a Nexpro tenant (matched or Nexpro-only) is a customer on the days its tenant is
      under contract (fct_tenant_daily_usage.is_under_contract).
    - A Salesforce-only company (no usable tenant key) is a customer from its account's contract start
      date, until the day after a renewal it did not reach: a Renewal deal Closed Lost on or before the
      day, whose service start (the renewal date, which is the last day of service) is before the day.
      Only what Salesforce shows as of the day decides it.

    Incremental like fct_health_scores: a first build (or --full-refresh) writes the health_history_days
    dates ending on run_date; a later run writes its run_date only, replacing whatever that date held.
#}
{{ config(
    materialized='incremental',
    unique_key='score_date',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}
{%- set history_days = var('health_history_days') | int -%}
{%- if history_days < 1 or history_days > var('usage_history_days') | int -%}
    {{ exceptions.raise_compiler_error(
        "var('health_history_days') is " ~ history_days ~ "; it must be between 1 and var('usage_history_days') ("
        ~ var('usage_history_days') ~ "), because the health score reads fct_tenant_daily_usage, which keeps "
        ~ "that many dates. Lower health_history_days or raise usage_history_days in dbt_project.yml."
    ) }}
{%- endif -%}

with

companies as (

    select * from {{ ref('int_companies_identified') }}

),

tenant_days as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

score_dates as (

    select cast(day as date) as score_date
    from generate_series(
        {% if is_incremental() -%}
        {{ run_date() }},
        {%- else -%}
        {{ dbt.dateadd('day', -1 * (history_days - 1), run_date()) }},
        {%- endif %}
        {{ run_date() }},
        interval '1 day'
    ) as day

),

tenant_customer_days as (

    select
        companies.company_id,
        tenant_days.usage_date as score_date
    from tenant_days
    inner join companies
        on tenant_days.tenant_id = companies.tenant_id
    inner join score_dates
        on tenant_days.usage_date = score_dates.score_date
    where tenant_days.is_under_contract

),

lost_renewals as (

    select
        account_id,
        close_date,
        coalesce(service_start_date, close_date) as last_day_of_service
    from opportunities
    where opportunity_type = 'Renewal'
        and is_closed
        and not is_won

),

salesforce_only_customer_days as (

    select
        companies.company_id,
        score_dates.score_date
    from companies
    inner join accounts
        on companies.account_id = accounts.account_id
    inner join score_dates
        on accounts.contract_start_date <= score_dates.score_date
    where companies.match_status = 'salesforce_only'
        and not exists (
            select
            from lost_renewals
            where lost_renewals.account_id = companies.account_id
                and lost_renewals.close_date <= score_dates.score_date
                and lost_renewals.last_day_of_service < score_dates.score_date
                and lost_renewals.last_day_of_service >= accounts.contract_start_date
        )

),

customer_days as (

    select * from tenant_customer_days
    union all
    select * from salesforce_only_customer_days

),

final as (

    select
        cast(companies.company_id as text) as company_id,
        cast(companies.account_id as text) as account_id,
        cast(companies.tenant_id as bigint) as tenant_id,
        cast(companies.company_name as text) as company_name,
        cast(companies.csm_user_id as text) as csm_user_id,
        cast(companies.csm_name as text) as csm_name,
        cast(customer_days.score_date as date) as score_date,
        {{ computed_at() }} as computed_at
    from customer_days
    inner join companies
        on customer_days.company_id = companies.company_id

)

select * from final
