-- The rubric-change cause scores a day again under a stored rubric version (macros/health_rubric.sql,
-- health_scores_under_rubrics). Scoring the run date's rows under the version each was computed with must give
-- their own total and computed status, or the cause would compare two different scorings. Fails with the rows
-- that differ.

with

scores as (

    select * from {{ ref('fct_health_scores') }}
    where score_date = {{ run_date() }}

),

versions as (

    select * from {{ ref('health_rubric_versions') }}

),

targets as (

    select company_id, score_date, rubric_hash from scores

),

{{ health_scores_under_rubrics('targets', 'versions', 'rescored', run_date()) }}

final as (

    select
        scores.company_id,
        scores.score_date,
        scores.rubric_version,
        scores.total_score,
        rescored.total_score as rescored_total_score,
        scores.computed_status,
        rescored.computed_status as rescored_computed_status
    from scores
    inner join rescored
        on scores.company_id = rescored.company_id
        and scores.score_date = rescored.score_date
    where scores.total_score is distinct from rescored.total_score
        or scores.computed_status is distinct from rescored.computed_status

)

select * from final
