{#
    One row per health status override a CSM ever set (seed health_status_overrides): who set which
    status for which company, why, from when until when, the status the rubric computed for the company
    on the day it was set (what it overrode), and whether it is in force as of run_date (within its dates
    and not superseded by a later-set override of the same company).
#}

with

overrides as (

    select * from {{ ref('int_health_status_overrides') }}

),

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

-- the override each company has in force on run_date: the latest set among those whose dates cover it
in_force as (

    select distinct on (company_id)
        company_id,
        override_id
    from overrides
    where {{ run_date() }} between set_on and expires_on
    order by company_id, set_on desc, expires_on desc, override_id

),

final as (

    select
        cast(overrides.override_id as text) as override_id,
        cast(overrides.company_id as text) as company_id,
        cast(overrides.account_id as text) as account_id,
        cast(overrides.override_status as text) as override_status,
        cast(overrides.override_reason as text) as override_reason,
        cast(overrides.set_by as text) as set_by,
        cast(overrides.set_on as date) as set_on,
        cast(overrides.expires_on as date) as expires_on,
        cast(health_scores.computed_status as text) as computed_status_on_set_on,
        cast(in_force.override_id is not null as boolean) as is_active,
        cast({{ run_date() }} as date) as computed_for_run_date
    from overrides
    left join health_scores
        on overrides.company_id = health_scores.company_id
        and overrides.set_on = health_scores.score_date
    left join in_force
        on overrides.override_id = in_force.override_id

)

select * from final
