-- The signal rules (seeds/kpi/signal_rules.csv): every signal fct_company_signals raises is there once, of
-- its kind, with the thresholds its SQL reads. One failing row per problem, naming the row and the fix.

with

rules as (

    select * from {{ ref('signal_rules') }}

),

known as (

    select *
    from (values
        ('usage_near_plan_limit', 'expansion', true, false, true),
        ('outcome_goal_achieved', 'expansion', true, false, false),
        ('feature_heavy_use', 'expansion', true, true, true),
        ('nps_promoter', 'expansion', true, false, true),
        ('renewal_soon_not_green', 'risk', true, false, false),
        ('key_person_lost', 'risk', true, false, true),
        ('usage_drop', 'risk', true, true, true),
        ('onboarding_stalled', 'risk', true, false, true)
    ) as known_signals (signal_key, signal_kind, needs_threshold, needs_min_base, needs_window)

),

problems as (

    select
        known.signal_key,
        'missing' as problem,
        'add a row for ' || known.signal_key || ' (kind ' || known.signal_kind || ')' as fix
    from known
    left join rules
        on known.signal_key = rules.signal_key
    where rules.signal_key is null

    union all

    select
        rules.signal_key,
        'unknown signal (no SQL raises it)',
        'use one of the agreed signal keys, or add its rule to int_company_signal_days'
    from rules
    left join known
        on rules.signal_key = known.signal_key
    where known.signal_key is null

    union all

    select
        rules.signal_key,
        'signal_kind is ''' || coalesce(rules.signal_kind, '') || '''',
        'write ' || known.signal_kind
    from rules
    inner join known
        on rules.signal_key = known.signal_key
    where rules.signal_kind is distinct from known.signal_kind

    union all

    select
        rules.signal_key,
        'threshold, min_base or window_days missing or not positive',
        'fill threshold' || case when known.needs_min_base then ', min_base' else '' end
            || case when known.needs_window then ' and window_days' else '' end || ' with positive numbers'
    from rules
    inner join known
        on rules.signal_key = known.signal_key
    where (known.needs_threshold and (rules.threshold is null or rules.threshold <= 0))
        or (known.needs_min_base and (rules.min_base is null or rules.min_base <= 0))
        or (known.needs_window and (rules.window_days is null or rules.window_days <= 0))

    union all

    select
        signal_key,
        'signal_name or description empty',
        'say in words what the signal means'
    from rules
    where coalesce(trim(signal_name), '') = '' or coalesce(trim(description), '') = ''

)

select * from problems
