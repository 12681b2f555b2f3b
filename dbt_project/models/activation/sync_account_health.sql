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

scores_today as (

    select * from {{ ref('fct_health_scores') }}
    where score_date = {{ run_date() }}

),

scored_accounts as (

    -- every scored date up to run_date of the companies Salesforce knows, with only what is compared (the
    -- reasons as a hash: a year of sentences per company would be sorted to disk)
    select
        company_id,
        account_id,
        score_date,
        total_score,
        health_status,
        coalesce(md5(top_reasons), 'none') as reasons_hash
    from {{ ref('fct_health_scores') }}
    where account_id is not null
        and score_date <= {{ run_date() }}

),

with_week_before as (

    select
        scored_accounts.*,
        -- the score exactly 7 days before; null when that date was not scored
        max(total_score) over (
            partition by company_id
            order by score_date
            range between interval '7 days' preceding and interval '7 days' preceding
        ) as week_before_score
    from scored_accounts

),

with_trend as (

    select
        with_week_before.*,
        case
            when total_score is null or week_before_score is null then null
            when total_score - week_before_score >= {{ var('health_trend_min_change') }} then 'Up'
            when week_before_score - total_score >= {{ var('health_trend_min_change') }} then 'Down'
            else 'Flat'
        end as health_trend
    from with_week_before

),

compared as (

    -- a date whose written values differ from the company's previous scored date (or its first date)
    select
        company_id,
        account_id,
        score_date,
        total_score,
        health_status,
        health_trend,
        row_number() over company_dates = 1
        or total_score is distinct from lag(total_score) over company_dates
        or health_status is distinct from lag(health_status) over company_dates
        or health_trend is distinct from lag(health_trend) over company_dates
        or reasons_hash is distinct from lag(reasons_hash) over company_dates as is_change
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
        cast(compared.account_id as text) as "Id",
        cast(compared.total_score as numeric(4, 2)) as "Health_Score__c",
        cast(compared.health_status as text) as "Health_Status__c",
        cast(compared.health_trend as text) as "Health_Trend__c",
        cast(scores_today.top_reasons as text) as "Health_Reasons__c",
        cast(values_since.values_since_date as date) as "Health_Score_Date__c"
    from compared
    inner join values_since
        on compared.company_id = values_since.company_id
    inner join scores_today
        on compared.company_id = scores_today.company_id
    where compared.score_date = {{ run_date() }}

)

select * from final
