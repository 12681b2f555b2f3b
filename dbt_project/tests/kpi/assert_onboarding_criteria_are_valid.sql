-- The onboarding completion criteria (seeds/kpi/onboarding_completion_criteria.csv): every criterion the
-- SQL knows is there once, of its kind, with a positive threshold. One failing row per problem.

with

criteria as (

    select * from {{ ref('onboarding_completion_criteria') }}

),

known as (

    select *
    from (values
        ('completion_window_days', 'window'),
        ('first_webinar_with_attendees', 'completion'),
        ('login_days', 'completion'),
        ('advanced_feature_tried', 'completion'),
        ('outcome_goal_set', 'completion'),
        ('first_value_event', 'first_value')
    ) as known_criteria (criterion_key, criterion_kind)

),

problems as (

    select
        known.criterion_key,
        'missing' as problem,
        'add a row ' || known.criterion_key || ',' || known.criterion_kind || ',<threshold>,true,<description>' as fix
    from known
    left join criteria
        on known.criterion_key = criteria.criterion_key
    where criteria.criterion_key is null

    union all

    select
        criteria.criterion_key,
        'unknown criterion (the SQL would ignore it)',
        'use one of completion_window_days, first_webinar_with_attendees, login_days, advanced_feature_tried, '
            || 'outcome_goal_set, first_value_event, or add the criterion to the onboarding models'
    from criteria
    left join known
        on criteria.criterion_key = known.criterion_key
    where known.criterion_key is null

    union all

    select
        criteria.criterion_key,
        'criterion_kind is ''' || coalesce(criteria.criterion_kind, '') || '''',
        'write ' || known.criterion_kind
    from criteria
    inner join known
        on criteria.criterion_key = known.criterion_key
    where criteria.criterion_kind is distinct from known.criterion_kind

    union all

    select
        criterion_key,
        'threshold ' || coalesce(cast(threshold as text), 'empty') || ' is not positive',
        'give a positive number (days, a count or a feature-tier rank from 1 to 3)'
    from criteria
    where threshold is null
        or threshold <= 0
        or (criterion_key = 'advanced_feature_tried' and threshold > 3)

    union all

    select
        criterion_key,
        'is_required is empty or false for the window or the first value event',
        'set is_required to true: the window and the first value event cannot be switched off'
    from criteria
    where is_required is null
        or (criterion_kind in ('window', 'first_value') and not is_required)

)

select * from problems
