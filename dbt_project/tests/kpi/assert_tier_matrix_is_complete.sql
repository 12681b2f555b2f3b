-- The Tier matrix (seeds/kpi/tier_matrix.csv) and its contract value bands (contract_value_bands.csv):
-- every band × growth potential pair maps to exactly one tier, each tier to one touch model, and the bands
-- cover every value from 0. One failing row per problem, naming the row and the fix.

with

matrix as (

    select * from {{ ref('tier_matrix') }}

),

bands as (

    select * from {{ ref('contract_value_bands') }}

),

growth_potentials as (

    select growth_potential
    from (values ('High'), ('Medium'), ('Low')) as potentials (growth_potential)

),

expected_pairs as (

    select
        bands.contract_value_band,
        growth_potentials.growth_potential
    from bands
    cross join growth_potentials

),

problems as (

    select
        expected_pairs.contract_value_band,
        expected_pairs.growth_potential,
        'no tier for this pair' as problem,
        'add a row to tier_matrix.csv for band ' || expected_pairs.contract_value_band
            || ' and growth potential ' || expected_pairs.growth_potential as fix
    from expected_pairs
    left join matrix
        on expected_pairs.contract_value_band = matrix.contract_value_band
        and expected_pairs.growth_potential = matrix.growth_potential
    where matrix.tier is null

    union all

    select
        contract_value_band,
        growth_potential,
        count(*) || ' rows for this pair',
        'keep one row per contract_value_band and growth_potential'
    from matrix
    group by contract_value_band, growth_potential
    having count(*) > 1

    union all

    select
        matrix.contract_value_band,
        matrix.growth_potential,
        'band or growth potential unknown',
        'use a band of contract_value_bands.csv and a growth potential High, Medium or Low'
    from matrix
    left join expected_pairs
        on matrix.contract_value_band = expected_pairs.contract_value_band
        and matrix.growth_potential = expected_pairs.growth_potential
    where expected_pairs.contract_value_band is null

    union all

    select
        contract_value_band,
        growth_potential,
        'tier ''' || coalesce(tier, '') || ''' or touch model ''' || coalesce(touch_model, '') || ''' unknown',
        'use Tier 1, Tier 2 or Tier 3 and high_touch, low_touch or tech_touch'
    from matrix
    where tier is null
        or tier not in ('Tier 1', 'Tier 2', 'Tier 3')
        or touch_model is null
        or touch_model not in ('high_touch', 'low_touch', 'tech_touch')

    union all

    select
        cast(null as text),
        cast(null as text),
        tier || ' has ' || count(distinct touch_model) || ' touch models',
        'give every row of ' || tier || ' the same touch model'
    from matrix
    group by tier
    having count(distinct touch_model) > 1

    union all

    select
        contract_value_band,
        cast(null as text),
        'min_annual_value_jpy ' || coalesce(cast(min_annual_value_jpy as text), 'empty') || ' is not a value',
        'give every band a minimum of 0 or more'
    from bands
    where min_annual_value_jpy is null or min_annual_value_jpy < 0

    union all

    select
        cast(null as text),
        cast(null as text),
        'no band starts at 0',
        'set one band''s min_annual_value_jpy to 0 so every contract value has a band'
    from (select min(min_annual_value_jpy) as lowest from bands) as lowest_band
    where lowest is distinct from 0

)

select * from problems
