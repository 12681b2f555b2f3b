-- Warns when the rubric seeds changed but the label did not: the rubric the seeds hold has the label of an
-- earlier, different rubric version (health_rubric_versions), so the run summary would read "rubric v3 → v3".
-- Bump rubric_version in health_rubric_version.csv.
{{ config(severity='warn') }}

with

current_rubric as (

    select * from {{ ref('int_health_rubric') }}

),

versions as (

    select * from {{ ref('health_rubric_versions') }}

),

final as (

    select
        current_rubric.rubric_version,
        versions.rubric_hash as earlier_rubric_hash,
        versions.first_run_date as earlier_first_run_date,
        'health_rubric_version.csv: the rubric changed but its label ' || current_rubric.rubric_version
            || ' already names the rubric first scored on ' || versions.first_run_date
            || '; bump rubric_version' as problem
    from current_rubric
    inner join versions
        on current_rubric.rubric_version = versions.rubric_version
        and current_rubric.rubric_hash <> versions.rubric_hash

)

select * from final
