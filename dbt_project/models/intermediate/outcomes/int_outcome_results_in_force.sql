{#
    One row per outcome result that has an achievement rate, with the days on which it is its goal's latest
    result: from the business date it was entered (entered_on) until the first day a result of a later
    period (or a later entry for the same period) has been entered (superseded_on, null while none has).
    The one rule every health, signal and KPI model reads a goal's result "as of a day" from:

        entered_on <= day and (superseded_on is null or day < superseded_on)

    A result entered before an earlier period's result is never superseded by it, so a late correction for
    an old month does not hide a newer month. The achievement rate is the one entered in Salesforce
    (Achievement_Rate__c, a percentage) or, when that is empty, the actual value over the goal's target; a
    result with neither is left out (it says nothing about achievement).
#}

with

outcome_goals as (

    select * from {{ ref('stg_salesforce__outcome_goals') }}

),

outcome_results as (

    select * from {{ ref('stg_salesforce__outcome_results') }}

),

rated as (

    select
        outcome_results.outcome_result_id,
        outcome_results.outcome_goal_id,
        outcome_goals.account_id,
        outcome_results.period_month,
        coalesce(
            outcome_results.achievement_rate_pct / 100,
            outcome_results.actual_value / nullif(outcome_goals.target_value, 0)
        ) as achievement_rate,
        {{ to_business_date('outcome_results.created_at') }} as entered_on,
        outcome_results.created_at
    from outcome_results
    inner join outcome_goals
        on outcome_results.outcome_goal_id = outcome_goals.outcome_goal_id

),

final as (

    select
        cast(outcome_result_id as text) as outcome_result_id,
        cast(outcome_goal_id as text) as outcome_goal_id,
        cast(account_id as text) as account_id,
        cast(period_month as date) as period_month,
        cast(achievement_rate as numeric(12, 6)) as achievement_rate,
        cast(entered_on as date) as entered_on,
        cast(min(entered_on) over (
            partition by outcome_goal_id
            order by period_month, created_at, outcome_result_id
            rows between 1 following and unbounded following
        ) as date) as superseded_on
    from rated
    where achievement_rate is not null

)

select * from final
