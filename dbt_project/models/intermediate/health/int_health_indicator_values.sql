{#
    One row per company per score date (int_health_customer_days) with the value of every health-score
    indicator as of that date. Only facts dated on or before the date count:

    - usage (login days, webinars held, feature depth, attendee trend): the tenant's row of
      fct_tenant_daily_usage for the date; null for a company without a tenant;
    - goal achievement: the goals active that day (start date <= day <= end date, created by then, and not
      cancelled by then), each with its latest result as of the day (int_outcome_results_in_force); each
      rate capped at 100%, averaged over the goals with a result (fraction);
    - touchpoints: distinct business dates with a touchpoint (int_company_touchpoints) logged on any of the
      company's accounts within the trailing 30 and 60 days;
    - key persons: contacts flagged Key_Person__c, created by then and active that day (a contact now
      inactive was active until its last change);

    Goals, touchpoints and key persons count on every live account the company's records count for
    (int_accounts_mapped_to_companies): a duplicate account's are the company's too. The renewal date is
    the company's own account's.
    - renewal: the account's renewal date moved by whole years to the first date after the day, and the
      whole months from the day to it.

    Salesforce-based values are null for a company without an account; a company with an account and no
    activity or key person has zeros.

    Incremental like fct_health_scores: a first build (or --full-refresh) writes every date of
    int_health_customer_days; a later run writes its run_date only, replacing whatever that date held.
#}
{{ config(
    materialized='incremental',
    unique_key='score_date',
    indexes=[{'columns': ['computed_at'], 'type': 'brin'}],
) }}

with

customer_days as (

    select * from {{ ref('int_health_customer_days') }}
    {% if is_incremental() %}
    where score_date = {{ run_date() }}
    {% endif %}

),

tenant_days as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

contacts as (

    select * from {{ ref('stg_salesforce__contacts') }}

),

company_touchpoints as (

    select * from {{ ref('int_company_touchpoints') }}

),

outcome_goals as (

    select * from {{ ref('stg_salesforce__outcome_goals') }}

),

results_in_force as (

    select * from {{ ref('int_outcome_results_in_force') }}

),

touchpoints as (

    select
        customer_days.company_id,
        customer_days.score_date,
        count(distinct company_touchpoints.touch_date) filter (
            where company_touchpoints.touch_date > customer_days.score_date - 30
        ) as touchpoints_30d,
        count(distinct company_touchpoints.touch_date) as touchpoints_60d
    from customer_days
    inner join company_touchpoints
        on customer_days.company_id = company_touchpoints.company_id
        and company_touchpoints.touch_date <= customer_days.score_date
        and company_touchpoints.touch_date > customer_days.score_date - 60
    group by customer_days.company_id, customer_days.score_date

),

key_persons as (

    select
        customer_days.company_id,
        customer_days.score_date,
        count(*) as key_persons
    from customer_days
    inner join account_companies
        on customer_days.company_id = account_companies.company_id
    inner join contacts
        on account_companies.account_id = contacts.account_id
        and {{ to_business_date('contacts.created_at') }} <= customer_days.score_date
        and (contacts.is_active or {{ to_business_date('contacts.updated_at') }} > customer_days.score_date)
    where contacts.is_key_person
    group by customer_days.company_id, customer_days.score_date

),

active_goals as (

    select
        customer_days.company_id,
        customer_days.score_date,
        outcome_goals.outcome_goal_id
    from customer_days
    inner join account_companies
        on customer_days.company_id = account_companies.company_id
    inner join outcome_goals
        on account_companies.account_id = outcome_goals.account_id
        and outcome_goals.start_date <= customer_days.score_date
        and outcome_goals.end_date >= customer_days.score_date
        and {{ to_business_date('outcome_goals.created_at') }} <= customer_days.score_date
        and (
            outcome_goals.goal_status is distinct from 'Cancelled'
            or {{ to_business_date('outcome_goals.updated_at') }} > customer_days.score_date
        )

),

latest_goal_results as (

    select
        active_goals.company_id,
        active_goals.score_date,
        active_goals.outcome_goal_id,
        results_in_force.achievement_rate
    from active_goals
    left join results_in_force
        on active_goals.outcome_goal_id = results_in_force.outcome_goal_id
        and results_in_force.entered_on <= active_goals.score_date
        and (results_in_force.superseded_on is null or results_in_force.superseded_on > active_goals.score_date)

),

goal_achievement as (

    select
        company_id,
        score_date,
        count(*) as active_goals,
        count(achievement_rate) as goals_with_result,
        -- least() would turn a goal without a result (null) into 1
        avg(case when achievement_rate is not null then least(achievement_rate, 1) end) as goal_achievement_rate
    from latest_goal_results
    group by company_id, score_date

),

renewals as (

    select
        customer_days.company_id,
        customer_days.score_date,
        -- the renewal date moved by whole years so that it falls in the year after score_date
        accounts.renewal_date + make_interval(years => cast(
            extract(year from customer_days.score_date) - extract(year from accounts.renewal_date)
            + case
                when (accounts.renewal_date + make_interval(years => cast(
                    extract(year from customer_days.score_date) - extract(year from accounts.renewal_date) as integer
                ))) <= customer_days.score_date then 1
                else 0
            end
            as integer
        )) as next_renewal_date
    from customer_days
    inner join accounts
        on customer_days.account_id = accounts.account_id
    where accounts.renewal_date is not null

),

renewal_months as (

    select
        company_id,
        score_date,
        next_renewal_date,
        -- whole months m with score_date + m months <= next_renewal_date
        months_apart - case
            when score_date + make_interval(months => months_apart) > next_renewal_date then 1
            else 0
        end as months_to_renewal
    from (
        select
            company_id,
            score_date,
            cast(next_renewal_date as date) as next_renewal_date,
            cast(
                12 * (extract(year from next_renewal_date) - extract(year from score_date))
                + extract(month from next_renewal_date) - extract(month from score_date)
                as integer
            ) as months_apart
        from renewals
    ) as renewals_with_months

),

final as (

    select
        -- keys
        cast(customer_days.company_id as text) as company_id,
        cast(customer_days.account_id as text) as account_id,
        cast(customer_days.tenant_id as bigint) as tenant_id,
        cast(customer_days.company_name as text) as company_name,
        cast(customer_days.csm_user_id as text) as csm_user_id,
        cast(customer_days.csm_name as text) as csm_name,
        cast(customer_days.score_date as date) as score_date,

        -- usage
        cast(tenant_days.login_days_30d as integer) as login_days_30d,
        cast(tenant_days.webinars_held_30d as integer) as webinars_held_30d,
        cast(tenant_days.feature_depth_tier_30d as text) as feature_depth_tier_30d,
        cast(tenant_days.feature_depth_rank_30d as integer) as feature_depth_rank_30d,

        -- outcome
        cast(goal_achievement.active_goals as integer) as active_goals,
        cast(goal_achievement.goals_with_result as integer) as goals_with_result,
        cast(goal_achievement.goal_achievement_rate as numeric(8, 4)) as goal_achievement_rate,
        cast(tenant_days.attendees_30d as integer) as attendees_30d,
        cast(tenant_days.attendees_prior_90d as integer) as attendees_prior_90d,
        cast(tenant_days.attendee_trend_ratio as numeric(12, 4)) as attendee_trend_ratio,

        -- relationship: zeros for an account without activity, null without an account
        cast(case when customer_days.account_id is not null then coalesce(touchpoints.touchpoints_30d, 0) end as integer)
            as touchpoints_30d,
        cast(case when customer_days.account_id is not null then coalesce(touchpoints.touchpoints_60d, 0) end as integer)
            as touchpoints_60d,
        cast(case when customer_days.account_id is not null then coalesce(key_persons.key_persons, 0) end as integer)
            as key_persons,

        -- contract
        cast(renewal_months.next_renewal_date as date) as next_renewal_date,
        cast(renewal_months.months_to_renewal as integer) as months_to_renewal,

        -- lineage
        {{ computed_at() }} as computed_at

    from customer_days
    left join tenant_days
        on customer_days.tenant_id = tenant_days.tenant_id
        and customer_days.score_date = tenant_days.usage_date
    left join goal_achievement
        on customer_days.company_id = goal_achievement.company_id
        and customer_days.score_date = goal_achievement.score_date
    left join touchpoints
        on customer_days.company_id = touchpoints.company_id
        and customer_days.score_date = touchpoints.score_date
    left join key_persons
        on customer_days.company_id = key_persons.company_id
        and customer_days.score_date = key_persons.score_date
    left join renewal_months
        on customer_days.company_id = renewal_months.company_id
        and customer_days.score_date = renewal_months.score_date

)

select * from final
