-- One row per company and enabled playbook whose trigger holds on run_date: the day's firing candidates. A
-- company counts when it is scored on run_date (a customer that day) and its touch model is in the playbook's
-- audience. The row carries what the action needs: the CSM who owns a Task or Opportunity, the key contact an
-- e-mail goes to (the company's longest-standing active key person with an e-mail address), the Task's or
-- Opportunity's fields, the e-mail template, and why the trigger holds. `missing_recipient` says why a
-- candidate cannot be sent (no CSM, no Salesforce account, no key contact): the activation records it as
-- skipped. Whether it fires is decided by the activation's ledger (cooldown, a firing already made for the
-- date): `firing_key` (company|playbook|run date) names the firing there and in Salesforce.
--
-- A status the rubric put a company in fires nothing: the status and status-change triggers are left out when
-- the change that started the company's current status was caused by a rubric change
-- (fct_health_scores.status_change_cause = 'rubric_change', on the run date or on status_since). Signals fire as
-- usual.

with

playbooks as (

    select * from {{ ref('playbooks') }}
    where enabled

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

signals as (

    select * from {{ ref('fct_company_signals') }}

),

companies as (

    select * from {{ ref('dim_companies') }}

),

account_companies as (

    select * from {{ ref('int_accounts_mapped_to_companies') }}

),

contacts as (

    select * from {{ ref('stg_salesforce__contacts') }}

),

users as (

    select * from {{ ref('stg_salesforce__users') }}

),

health_today as (

    select * from health_scores where score_date = {{ run_date() }}

),

-- what caused the change into the company's current status: today's change, or the one on status_since
status_entry as (

    select
        health_today.company_id,
        coalesce(health_today.status_change_cause, status_started.status_change_cause) as status_change_cause
    from health_today
    left join health_scores as status_started
        on health_today.company_id = status_started.company_id
        and health_today.status_since = status_started.score_date

),

-- the statuses and changes a rubric change made; they trigger no playbook
health_triggering as (

    select health_today.*
    from health_today
    inner join status_entry
        on health_today.company_id = status_entry.company_id
    where status_entry.status_change_cause is distinct from 'rubric_change'

),

-- a trigger that holds today: the status, the status change or the active signal, with when it started
triggers as (

    select
        company_id,
        'status' as trigger_type,
        health_status as trigger_value,
        status_since as trigger_started_on,
        top_reasons as trigger_detail
    from health_triggering

    union all

    select
        company_id,
        'transition' as trigger_type,
        health_status as trigger_value,
        score_date as trigger_started_on,
        status_transition || coalesce(': ' || top_reasons, '') as trigger_detail
    from health_triggering
    where status_transition is not null

    union all

    select
        company_id,
        'signal' as trigger_type,
        signal_key as trigger_value,
        started_on as trigger_started_on,
        detail as trigger_detail
    from signals
    where as_of_date = {{ run_date() }}

),

-- key persons active on the run date (created by then; active, or made inactive only after it) with an
-- e-mail address, the longest-standing first
key_contacts as (

    select distinct on (account_companies.company_id)
        account_companies.company_id,
        contacts.contact_id,
        contacts.contact_name,
        contacts.email
    from contacts
    inner join account_companies
        on contacts.account_id = account_companies.account_id
    where contacts.is_key_person
        and contacts.email is not null
        and trim(contacts.email) <> ''
        and {{ to_business_date('contacts.created_at') }} <= {{ run_date() }}
        and (contacts.is_active or {{ to_business_date('contacts.updated_at') }} > {{ run_date() }})
    order by account_companies.company_id, contacts.created_at, contacts.contact_id

),

candidates as (

    select
        playbooks.*,
        triggers.trigger_started_on,
        triggers.trigger_detail,
        health_today.company_id,
        health_today.health_status,
        health_today.previous_health_status,
        health_today.status_transition,
        health_today.total_score,
        health_today.top_reasons,
        health_today.top_reasons_ja,
        companies.account_id,
        companies.company_name,
        companies.tier,
        companies.touch_model,
        companies.csm_user_id,
        companies.csm_name,
        users.email as csm_email,
        key_contacts.contact_id,
        key_contacts.contact_name,
        key_contacts.email as contact_email
    from playbooks
    inner join triggers
        on playbooks.trigger_type = triggers.trigger_type
        and (playbooks.trigger_value = triggers.trigger_value
            or (playbooks.trigger_type = 'transition' and playbooks.trigger_value = 'any'))
    inner join health_today
        on triggers.company_id = health_today.company_id
    inner join companies
        on health_today.company_id = companies.company_id
    left join users
        on companies.csm_user_id = users.user_id
    left join key_contacts
        on health_today.company_id = key_contacts.company_id
    where playbooks.audience = 'all'
        or companies.touch_model = any (string_to_array(replace(playbooks.audience, ' ', ''), '|'))

),

final as (

    select
        cast(company_id || '|' || playbook_key || '|' || cast({{ run_date() }} as text) as text) as firing_key,
        cast({{ run_date() }} as date) as run_date,
        cast(company_id as text) as company_id,
        cast(account_id as text) as account_id,
        cast(company_name as text) as company_name,
        cast(tier as text) as tier,
        cast(touch_model as text) as touch_model,

        -- the playbook
        cast(playbook_key as text) as playbook_key,
        cast(trigger_type as text) as trigger_type,
        cast(trigger_value as text) as trigger_value,
        cast(action as text) as action,
        cast(cooldown_days as integer) as cooldown_days,
        cast(sequence_key as text) as sequence_key,
        cast(sequence_step as integer) as sequence_step,

        -- why it fires
        cast(trigger_started_on as date) as trigger_started_on,
        cast(trigger_detail as text) as trigger_detail,
        cast(health_status as text) as health_status,
        cast(previous_health_status as text) as previous_health_status,
        cast(status_transition as text) as status_transition,
        cast(total_score as numeric(4, 2)) as total_score,
        cast(top_reasons as text) as top_reasons,
        cast(top_reasons_ja as text) as top_reasons_ja,

        -- who: the CSM (owner of a Task or Opportunity) and the key contact (an e-mail's recipient)
        cast(csm_user_id as text) as csm_user_id,
        cast(csm_name as text) as csm_name,
        cast(csm_email as text) as csm_email,
        cast(contact_id as text) as contact_id,
        cast(contact_name as text) as contact_name,
        cast(contact_email as text) as contact_email,

        -- what the action needs
        cast(case when action in ('salesforce_task', 'opportunity_draft') then subject end as text) as subject,
        cast(case when action = 'salesforce_task' then priority end as text) as priority,
        cast(case when action in ('salesforce_task', 'opportunity_draft')
            then {{ run_date() }} + due_in_days end as date) as due_date,
        cast(case when action = 'opportunity_draft' then opportunity_type end as text) as opportunity_type,
        cast(case when action = 'email' then email_template end as text) as email_template,
        cast(
            case
                when action in ('salesforce_task', 'opportunity_draft') and account_id is null
                    then 'the company has no Salesforce account'
                when action in ('salesforce_task', 'opportunity_draft') and csm_user_id is null
                    then 'no CSM owns the company''s account'
                when action = 'email' and contact_email is null
                    then 'the company has no active key-person contact with an e-mail address'
            end
            as text
        ) as missing_recipient

    from candidates

)

select * from final
