-- Every playbook (seed playbooks) can fire: a unique key, a known trigger (a health status of
-- health_status_bands, `any` status change, or a signal_key of signal_rules), a known action with what it
-- needs (a Task's subject, priority and due days; an Opportunity's subject, type and close days; an e-mail's
-- template of email_templates), touch models that exist, a cooldown of 0 days or more, and a step number for
-- each step of a sequence. Fails with one row per problem, naming the playbook and the fix.

with

playbooks as (

    select * from {{ ref('playbooks') }}

),

bands as (

    select * from {{ ref('health_status_bands') }}

),

signal_rules as (

    select * from {{ ref('signal_rules') }}

),

email_templates as (

    select * from {{ ref('email_templates') }}

),

lists as (

    select
        (select string_agg(health_status, ', ' order by band_order desc) from bands) as statuses,
        (select string_agg(signal_key, ', ' order by signal_key) from signal_rules) as signals,
        (select string_agg(template_key, ', ' order by template_key) from email_templates) as templates

),

audience_members as (

    select
        playbooks.playbook_key,
        trim(member) as touch_model
    from playbooks
    cross join lateral unnest(string_to_array(playbooks.audience, '|')) as members (member)
    where playbooks.audience <> 'all'

),

problems as (

    select playbook_key, 'give the playbook a playbook_key' as problem
    from playbooks
    where playbook_key is null or trim(playbook_key) = ''

    union all

    select playbook_key, 'playbook_key ' || playbook_key || ' appears ' || count(*) || ' times; keys must be unique'
    from playbooks
    where playbook_key is not null
    group by playbook_key
    having count(*) > 1

    union all

    select playbook_key, 'enabled must be true or false'
    from playbooks
    where enabled is null

    union all

    select
        playbooks.playbook_key,
        case
            when playbooks.trigger_type is null or playbooks.trigger_type not in ('status', 'transition', 'signal')
                then 'trigger_type ' || coalesce(playbooks.trigger_type, '(empty)')
                    || ' is not one of status, transition, signal'
            when playbooks.trigger_type = 'signal'
                then 'trigger_value ' || coalesce(playbooks.trigger_value, '(empty)')
                    || ' is not a signal; use one of: ' || lists.signals
            when playbooks.trigger_type = 'status'
                then 'trigger_value ' || coalesce(playbooks.trigger_value, '(empty)')
                    || ' is not a health status; use one of: ' || lists.statuses
            else 'trigger_value ' || coalesce(playbooks.trigger_value, '(empty)')
                || ' is not a health status; use one of: ' || lists.statuses || ', or any (every status change)'
        end
    from playbooks
    cross join lists
    where playbooks.trigger_type is null
        or playbooks.trigger_type not in ('status', 'transition', 'signal')
        or (playbooks.trigger_type = 'signal'
            and coalesce(playbooks.trigger_value, '') not in (select signal_key from signal_rules))
        or (playbooks.trigger_type = 'status'
            and coalesce(playbooks.trigger_value, '') not in (select health_status from bands))
        or (playbooks.trigger_type = 'transition'
            and coalesce(playbooks.trigger_value, '') not in (select health_status from bands union all select 'any'))

    union all

    select playbook_key, 'action ' || coalesce(action, '(empty)')
        || ' is not one of salesforce_task, opportunity_draft, email, slack'
    from playbooks
    where action is null or action not in ('salesforce_task', 'opportunity_draft', 'email', 'slack')

    union all

    select playbook_key, 'a ' || action || ' needs a subject'
    from playbooks
    where action in ('salesforce_task', 'opportunity_draft') and (subject is null or trim(subject) = '')

    union all

    select playbook_key, 'a ' || action || ' needs due_in_days of 0 or more (the due or close date after the run date)'
    from playbooks
    where action in ('salesforce_task', 'opportunity_draft') and (due_in_days is null or due_in_days < 0)

    union all

    select playbook_key, 'priority ' || coalesce(priority, '(empty)') || ' is not one of High, Normal, Low'
    from playbooks
    where action = 'salesforce_task' and (priority is null or priority not in ('High', 'Normal', 'Low'))

    union all

    select playbook_key, 'opportunity_type ' || coalesce(opportunity_type, '(empty)')
        || ' is not one of Upsell, Cross-sell'
    from playbooks
    where action = 'opportunity_draft' and (opportunity_type is null or opportunity_type not in ('Upsell', 'Cross-sell'))

    union all

    select playbooks.playbook_key, 'email_template ' || coalesce(playbooks.email_template, '(empty)')
        || ' is not a template of email_templates.csv; use one of: ' || lists.templates
    from playbooks
    cross join lists
    where playbooks.action = 'email'
        and coalesce(playbooks.email_template, '') not in (select template_key from email_templates)

    union all

    select playbook_key, 'audience names ' || coalesce(touch_model, '(empty)')
        || '; use all, or touch models separated by |: high_touch, low_touch, tech_touch'
    from audience_members
    where touch_model is null or touch_model not in ('high_touch', 'low_touch', 'tech_touch')

    union all

    select playbook_key, 'give an audience: all, or touch models separated by |'
    from playbooks
    where audience is null or trim(audience) = ''

    union all

    select playbook_key, 'cooldown_days ' || coalesce(cast(cooldown_days as text), '(empty)')
        || ' must be 0 or more (0: at most once per run date)'
    from playbooks
    where cooldown_days is null or cooldown_days < 0

    union all

    select playbook_key, 'a step of sequence ' || sequence_key || ' needs a sequence_step of 1 or more'
    from playbooks
    where sequence_key is not null and (sequence_step is null or sequence_step < 1)

    union all

    select playbook_key, 'sequence_step is given without a sequence_key'
    from playbooks
    where sequence_key is null and sequence_step is not null

    union all

    select step.playbook_key, 'sequence ' || step.sequence_key || ' has step ' || step.sequence_step
        || ' more than once; number its steps 1, 2, 3, ...'
    from playbooks as step
    where exists (
        select from playbooks as other
        where other.sequence_key = step.sequence_key
            and other.sequence_step = step.sequence_step
            and other.playbook_key is distinct from step.playbook_key
    )

),

final as (

    select
        playbook_key,
        'playbooks.csv: playbook ' || coalesce(playbook_key, '(no key)') || ': ' || problem as problem
    from problems

)

select * from final
