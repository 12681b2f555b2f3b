{#
    One row per Salesforce Account and scored business date in the var('writeback_history_days') dates
    ending on run_date: the Health_Score__c record (upserted by Health_Score_Key__c = '<Account Id>:<date>').
    Columns are named as the Salesforce fields.

    The window is the history a first sync sends. Later syncs send only what the ledger has not accepted
    yet: the run date's new records, and any earlier date whose scores were rebuilt with other values.
#}

with

scores as (

    select * from {{ ref('fct_health_scores') }}

),

final as (

    select
        cast(account_id || ':' || to_char(score_date, 'YYYY-MM-DD') as text) as "Health_Score_Key__c",
        cast(account_id as text) as "Account__c",
        cast(to_char(score_date, 'YYYY-MM-DD') as text) as "Name",
        cast(score_date as date) as "Score_Date__c",
        cast(total_score as numeric(4, 2)) as "Total_Score__c",
        cast(usage_score as numeric(4, 2)) as "Usage_Score__c",
        cast(outcome_score as numeric(4, 2)) as "Outcome_Score__c",
        cast(relationship_score as numeric(4, 2)) as "Relationship_Score__c",
        cast(contract_score as numeric(4, 2)) as "Contract_Score__c",
        cast(health_status as text) as "Status__c"
    from scores
    where account_id is not null
        and score_date > {{ dbt.dateadd('day', -1 * (var('writeback_history_days') | int), run_date()) }}
        and score_date <= {{ run_date() }}

)

select * from final
