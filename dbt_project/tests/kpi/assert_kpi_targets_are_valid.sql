-- The KPI targets seed (seeds/kpi/kpi_targets.csv), one failing row per problem: which row, what is wrong
-- and how to fix it.

with

targets as (

    select * from {{ ref('kpi_targets') }}

),

problems as (

    select
        kpi_key,
        programme_year,
        'direction is ''' || coalesce(direction, '') || '''' as problem,
        'write at_least (the actual must reach the target) or at_most (it must not exceed it)' as fix
    from targets
    where direction is null or direction not in ('at_least', 'at_most')

    union all

    select
        kpi_key,
        programme_year,
        'unit is ''' || coalesce(unit, '') || '''',
        'write ratio, days, count or jpy'
    from targets
    where unit is null or unit not in ('ratio', 'days', 'count', 'jpy')

    union all

    select
        kpi_key,
        programme_year,
        'kpi_branch is ''' || coalesce(kpi_branch, '') || '''',
        'write nrr, defence, offence or data'
    from targets
    where kpi_branch is null or kpi_branch not in ('nrr', 'defence', 'offence', 'data')

    union all

    select
        kpi_key,
        programme_year,
        'programme_year ' || programme_year || ' is not 1, 2 or 3',
        'use 1, 2 or 3, or leave it empty for a standing target'
    from targets
    where programme_year not in (1, 2, 3)

    union all

    select
        kpi_key,
        programme_year,
        'target_value ' || coalesce(cast(target_value as text), 'empty') || ' is not a valid ' || unit,
        'ratios are fractions from 0 to 2 (105% is 1.05); days, counts and JPY are positive'
    from targets
    where target_value is null
        or target_value < 0
        or (unit = 'ratio' and target_value > 2)

    union all

    select
        kpi_key,
        programme_year,
        'the KPI has ' || count(*) || ' rows for this programme year',
        'keep one row per kpi_key and programme_year (one standing row without a year)'
    from targets
    group by kpi_key, programme_year
    having count(*) > 1

    union all

    select
        kpi_key,
        cast(null as integer),
        'its rows disagree on kpi_name, kpi_branch, unit or direction',
        'give every row of one kpi_key the same name, branch, unit and direction'
    from targets
    group by kpi_key
    having count(distinct kpi_name) > 1
        or count(distinct kpi_branch) > 1
        or count(distinct unit) > 1
        or count(distinct direction) > 1

)

select * from problems
