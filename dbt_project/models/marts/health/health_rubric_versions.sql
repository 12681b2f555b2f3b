{#
    One row per rubric version the health score has been computed with: its hash, label and definition (the
    rubric seeds' content, so a past version can be applied again after the seeds changed), and the run date
    of the run that first scored with it.

    Incremental and never rebuilt: a run adds the rubric the seeds hold when its hash is new, and
    `--full-refresh` leaves the history as it is (full_refresh=false), because the seeds of a past version
    exist nowhere else. fct_health_scores reads it to score a day under the rubric a company's previous row
    was computed with.
#}
{{ config(
    materialized='incremental',
    unique_key='rubric_hash',
    full_refresh=false,
) }}

with

current_rubric as (

    select * from {{ ref('int_health_rubric') }}

),

final as (

    select
        cast(current_rubric.rubric_hash as text) as rubric_hash,
        cast(current_rubric.rubric_version as text) as rubric_version,
        cast(current_rubric.definition as jsonb) as definition,
        cast({{ run_date() }} as date) as first_run_date,
        {{ computed_at() }} as computed_at
    from current_rubric
    {% if is_incremental() %}
    where not exists (
        select
        from {{ this }}
        where {{ this }}.rubric_hash = current_rubric.rubric_hash
    )
    {% endif %}

)

select * from final
