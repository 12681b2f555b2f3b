-- The rubric's label (seed health_rubric_version) is one row: the label of the rubric the seeds hold. Fails
-- with the rows there are, saying what to change.

with

versions as (

    select * from {{ ref('health_rubric_version') }}

),

counted as (

    select versions.*, count(*) over () as version_rows
    from versions

),

final as (

    select
        rubric_version,
        version_rows,
        'health_rubric_version.csv: holds ' || version_rows || ' rows; keep one, the label of the rubric as it is now'
            as problem
    from counted
    where version_rows <> 1

    union all

    select
        cast(null as text) as rubric_version,
        0 as version_rows,
        'health_rubric_version.csv: holds no row; add one, e.g. rubric_version v1' as problem
    where not exists (select from versions)

)

select * from final
