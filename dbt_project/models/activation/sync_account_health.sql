{#
    One row per Salesforce Account whose company has a health score on run_date: the Account's health
    fields as the write-back sends them (an update by the Account's Id; the Account exists already).
    Columns are named as the Salesforce fields.

    Health_Trend__c compares the score with the company's score 7 days before: Up when it rose by at least
    var('health_trend_min_change'), Down when it fell by at least that much, Flat otherwise, null without a
    score on either date. Health_Score_Date__c is the business date since which these values have held: the
    latest scored date on which the score, status, trend or reasons changed. An Account whose health did
    not change is therefore the same row day after day, and the write-back (which sends changed rows only)
    leaves it alone; the daily history lives in Health_Score__c records (sync_health_score_history).
#}

with

scores as (

    select * from {{ ref('fct_health_scores') }}

),

scored_accounts as (

    -- every scored date up to run_date of the companies Salesforce knows
    select
        company_id,
        account_id,
        score_date,
        total_score,
        health_status,
        top_reasons
    from scores
    where account_id is not null
        and score_date <= {{ run_date() }}

),

with_trend as (

    select
        scored_accounts.*,
        case
            when scored_accounts.total_score is null or week_before.total_score is null then null
            when scored_accounts.total_score - week_before.total_score
                >= {{ var('health_trend_min_change') }} then 'Up'
            when week_before.total_score - scored_accounts.total_score
                >= {{ var('health_trend_min_change') }} then 'Down'
            else 'Flat'
        end as health_trend
    from scored_accounts
    left join scored_accounts as week_before
        on scored_accounts.company_id = week_before.company_id
        and week_before.score_date = scored_accounts.score_date - 7

),

compared as (

    -- a date whose written values differ from the company's previous scored date (or its first date)
    select
        company_id,
        score_date,
        row_number() over company_dates = 1
        or total_score is distinct from lag(total_score) over company_dates
        or health_status is distinct from lag(health_status) over company_dates
        or health_trend is distinct from lag(health_trend) over company_dates
        or top_reasons is distinct from lag(top_reasons) over company_dates as is_change
    from with_trend
    window company_dates as (partition by company_id order by score_date)

),

values_since as (

    select
        company_id,
        max(score_date) as values_since_date
    from compared
    where is_change
    group by company_id

),

final as (

    select
        cast(with_trend.account_id as text) as "Id",
        cast(with_trend.total_score as numeric(4, 2)) as "Health_Score__c",
        cast(with_trend.health_status as text) as "Health_Status__c",
        cast(with_trend.health_trend as text) as "Health_Trend__c",
        cast(with_trend.top_reasons as text) as "Health_Reasons__c",
        cast(values_since.values_since_date as date) as "Health_Score_Date__c"
    from with_trend
    inner join values_since
        on with_trend.company_id = values_since.company_id
    where with_trend.score_date = {{ run_date() }}

)

select * from final
