{#
    One row per touchpoint with a customer, dated on or before run_date: a Salesforce Task completed (on the
    business date of its completion, else its activity date), an Event held (its activity date) or a
    Meeting_Note__c (its meeting date), each with the account it was logged on and the company that
    account's records count for (int_accounts_mapped_to_companies). Records without a date, on an account
    that is not live, or dated after run_date are left out.
#}

with

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

tasks as (

    select * from {{ ref('stg_salesforce__tasks') }}

),

events as (

    select * from {{ ref('stg_salesforce__events') }}

),

meeting_notes as (

    select * from {{ ref('stg_salesforce__meeting_notes') }}

),

touches as (

    select
        'task' as touchpoint_kind,
        task_id as source_record_id,
        account_id,
        coalesce({{ to_business_date('completed_at') }}, activity_date) as touch_date
    from tasks
    where is_completed

    union all

    select
        'event' as touchpoint_kind,
        event_id as source_record_id,
        account_id,
        activity_date as touch_date
    from events

    union all

    select
        'meeting_note' as touchpoint_kind,
        meeting_note_id as source_record_id,
        account_id,
        meeting_date as touch_date
    from meeting_notes

),

final as (

    select
        cast(account_companies.company_id as text) as company_id,
        cast(touches.account_id as text) as account_id,
        cast(touches.touch_date as date) as touch_date,
        cast(touches.touchpoint_kind as text) as touchpoint_kind,
        cast(touches.source_record_id as text) as source_record_id
    from touches
    inner join account_companies
        on touches.account_id = account_companies.account_id
    where touches.touch_date <= {{ run_date() }}

)

select * from final
