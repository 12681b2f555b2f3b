-- The CSM Individual dashboard: one row per company scored on the run date (fct_health_scores: the
-- customers that day), filtered by its CSM: status, score and its trend (7 and 30 days ago), days in
-- status, reasons, active signals, next renewal, open tasks and when they are due, the latest touchpoint
-- and QBR, and MRR. The per-company facts come from dash_customer_360, so both dashboards agree.

with

health_scores as (

    select * from {{ ref('fct_health_scores') }}

),

customer_360 as (

    select * from {{ ref('dash_customer_360') }}

),

health_now as (

    select * from health_scores where score_date = {{ run_date() }}

),

-- status changes in the seven days ending on the run date; a move towards Red is a worsening, towards
-- Green an improvement
transitions_this_week as (

    select
        company_id,
        count(*) as status_transitions_7d,
        count(*) filter (
            where case previous_health_status when 'Green' then 3 when 'Yellow' then 2 when 'Red' then 1 end
                > case health_status when 'Green' then 3 when 'Yellow' then 2 when 'Red' then 1 end
        ) as status_worsened_7d,
        count(*) filter (
            where case previous_health_status when 'Green' then 3 when 'Yellow' then 2 when 'Red' then 1 end
                < case health_status when 'Green' then 3 when 'Yellow' then 2 when 'Red' then 1 end
        ) as status_improved_7d,
        string_agg(cast(score_date as text) || ' ' || status_transition, '; ' order by score_date)
            as status_transitions_7d_text
    from health_scores
    where status_transition is not null
        and score_date between {{ run_date() }} - 6 and {{ run_date() }}
    group by company_id

),

final as (

    select
        -- who
        cast(health_now.company_id as text) as company_id,
        cast(health_now.csm_user_id as text) as csm_user_id,
        cast(customer_360.csm_name as text) as csm_name,
        cast(customer_360.company_name as text) as company_name,
        cast(health_now.account_id as text) as account_id,
        cast(customer_360.tier as text) as tier,
        cast(customer_360.touch_model as text) as touch_model,

        -- status and score, and their trend
        cast(health_now.health_status as text) as health_status,
        cast(health_now.computed_status as text) as computed_status,
        cast(health_now.override_status as text) as override_status,
        cast(health_now.override_reason as text) as override_reason,
        cast(health_now.total_score as numeric(4,2)) as total_score,
        cast(health_now.is_low_coverage as boolean) as is_low_coverage,
        cast(week_ago.total_score as numeric(4,2)) as total_score_7d_ago,
        cast(month_ago.total_score as numeric(4,2)) as total_score_30d_ago,
        cast(health_now.total_score - week_ago.total_score as numeric(4,2)) as score_change_7d,
        cast(health_now.total_score - month_ago.total_score as numeric(4,2)) as score_change_30d,
        cast(case
            when health_now.total_score > month_ago.total_score then 'improving'
            when health_now.total_score < month_ago.total_score then 'declining'
            when health_now.total_score = month_ago.total_score then 'steady'
        end as text) as score_trend_30d,
        cast(week_ago.health_status as text) as health_status_7d_ago,
        cast(health_now.status_since as date) as status_since,
        cast(health_now.days_in_status as integer) as days_in_status,
        cast(coalesce(transitions_this_week.status_transitions_7d, 0) as integer) as status_transitions_7d,
        cast(coalesce(transitions_this_week.status_worsened_7d, 0) as integer) as status_worsened_7d,
        cast(coalesce(transitions_this_week.status_improved_7d, 0) as integer) as status_improved_7d,
        cast(transitions_this_week.status_transitions_7d_text as text) as status_transitions_7d_text,
        cast(health_now.top_reasons as text) as top_reasons,
        cast(health_now.top_reasons_ja as text) as top_reasons_ja,

        -- signals
        cast(customer_360.active_signals as text[]) as active_signals,
        cast(customer_360.active_signals_text as text) as active_signals_text,
        cast(customer_360.expansion_signals as integer) as expansion_signals,
        cast(customer_360.risk_signals as integer) as risk_signals,

        -- contract
        cast(health_now.next_renewal_date as date) as next_renewal_date,
        cast(health_now.next_renewal_date - {{ run_date() }} as integer) as days_to_renewal,
        cast(customer_360.mrr as numeric(18,2)) as mrr,
        cast(customer_360.mrr_month_start as date) as mrr_month_start,

        -- work and touch
        cast(customer_360.open_tasks as integer) as open_tasks,
        cast(customer_360.overdue_tasks as integer) as overdue_tasks,
        cast(customer_360.next_task_due_date as date) as next_task_due_date,
        cast(customer_360.open_task_due_dates as date[]) as open_task_due_dates,
        cast(customer_360.open_tasks_text as text) as open_tasks_text,
        cast(customer_360.last_touchpoint_date as date) as last_touchpoint_date,
        cast(customer_360.days_since_last_touchpoint as integer) as days_since_last_touchpoint,
        cast(customer_360.last_qbr_date as date) as last_qbr_date,
        cast(customer_360.has_qbr_last_3_months as boolean) as has_qbr_last_3_months,
        cast(customer_360.expansion_proposals_mtd as integer) as expansion_proposals_mtd,

        cast({{ run_date() }} as date) as as_of_date

    from health_now
    inner join customer_360
        on health_now.company_id = customer_360.company_id
    left join health_scores as week_ago
        on health_now.company_id = week_ago.company_id
        and week_ago.score_date = {{ run_date() }} - 7
    left join health_scores as month_ago
        on health_now.company_id = month_ago.company_id
        and month_ago.score_date = {{ run_date() }} - 30
    left join transitions_this_week
        on health_now.company_id = transitions_this_week.company_id

)

select * from final
