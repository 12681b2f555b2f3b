{#
    One row per programme year, from Year 1 through the programme year of run_date's month, and KPI with a
    target in force that year: the kpi_targets row of the latest programme year up to it, else the KPI's
    standing row (one without a year). A row given for one year so holds until a later year's row replaces
    it. No rows before the programme starts (var kpi_programme_start).
#}

with

targets as (

    select * from {{ ref('kpi_targets') }}

),

programme_years as (

    select cast(programme_year as integer) as programme_year
    from generate_series(1, {{ programme_year(dbt.date_trunc('month', run_date())) }}) as programme_year

),

target_candidates as (

    -- the targets that could apply, the latest programme year first and the standing target last
    select
        programme_years.programme_year,
        targets.kpi_key,
        targets.programme_year as target_programme_year,
        targets.target_value,
        row_number() over (
            partition by programme_years.programme_year, targets.kpi_key
            order by targets.programme_year desc nulls last
        ) as preference
    from programme_years
    inner join targets
        on targets.programme_year is null or targets.programme_year <= programme_years.programme_year

),

final as (

    select
        cast(programme_year as integer) as programme_year,
        cast(kpi_key as text) as kpi_key,
        cast(target_value as numeric(18,4)) as target_value,
        cast(target_programme_year as integer) as target_programme_year
    from target_candidates
    where preference = 1

)

select * from final
