-- The CS Manager dashboard: one row per CSM as of the run date, plus a row for the companies without a
-- CSM ('unassigned') and one for the whole team ('team'), summed from dash_csm_individual (the customers
-- scored that day): companies, MRR under management, health distribution and the Red list, status changes
-- this week, the QBR rate of Tier 1 and 2, expansion proposals this month against the target, open and
-- overdue tasks. Targets are the kpi_targets seed's for the programme year of the run date's month.

with

portfolio as (

    select * from {{ ref('dash_csm_individual') }}

),

-- the targets in force in the programme year of the run date's month
targets_in_force as (

    select *
    from {{ ref('int_kpi_targets_in_force') }}
    where programme_year = {{ programme_year(dbt.date_trunc('month', run_date())) }}

),

by_csm as (

    select
        coalesce(portfolio.csm_user_id, 'unassigned') as csm_key,
        max(portfolio.csm_user_id) as csm_user_id,
        max(portfolio.csm_name) as csm_name,
        grouping(coalesce(portfolio.csm_user_id, 'unassigned')) = 1 as is_team_total,
        count(distinct portfolio.csm_user_id) as csms,
        count(*) as companies,
        sum(coalesce(portfolio.mrr, 0)) as mrr_under_management,
        count(*) filter (where portfolio.health_status = 'Green') as green_companies,
        count(*) filter (where portfolio.health_status = 'Yellow') as yellow_companies,
        count(*) filter (where portfolio.health_status = 'Red') as red_companies,
        count(*) filter (where portfolio.health_status is null) as companies_without_status,
        sum(portfolio.status_transitions_7d) as status_transitions_7d,
        sum(portfolio.status_worsened_7d) as status_worsened_7d,
        sum(portfolio.status_improved_7d) as status_improved_7d,
        count(*) filter (where portfolio.tier in ('Tier 1', 'Tier 2')) as tier_1_2_companies,
        count(*) filter (where portfolio.tier in ('Tier 1', 'Tier 2') and portfolio.has_qbr_last_3_months)
            as tier_1_2_with_qbr,
        sum(portfolio.expansion_proposals_mtd) as expansion_proposals_mtd,
        sum(portfolio.open_tasks) as open_tasks,
        sum(portfolio.overdue_tasks) as overdue_tasks
    from portfolio
    group by grouping sets ((coalesce(portfolio.csm_user_id, 'unassigned')), ())

),

final as (

    select
        -- who
        cast(case when by_csm.is_team_total then 'team' else by_csm.csm_key end as text) as csm_key,
        cast(case when not by_csm.is_team_total then by_csm.csm_user_id end as text) as csm_user_id,
        cast(case
            when by_csm.is_team_total then 'Team total'
            when by_csm.csm_user_id is null then 'No CSM'
            else by_csm.csm_name
        end as text) as csm_name,
        cast(by_csm.is_team_total as boolean) as is_team_total,
        cast({{ run_date() }} as date) as as_of_date,

        -- portfolio
        cast(by_csm.companies as integer) as companies,
        cast(by_csm.mrr_under_management as numeric(18,2)) as mrr_under_management,

        -- health distribution
        cast(by_csm.green_companies as integer) as green_companies,
        cast(by_csm.yellow_companies as integer) as yellow_companies,
        cast(by_csm.red_companies as integer) as red_companies,
        cast(by_csm.companies_without_status as integer) as companies_without_status,
        cast(round(by_csm.green_companies / nullif(cast(by_csm.companies - by_csm.companies_without_status as numeric), 0), 6)
            as numeric(12,6)) as green_share,
        cast(round(by_csm.yellow_companies / nullif(cast(by_csm.companies - by_csm.companies_without_status as numeric), 0), 6)
            as numeric(12,6)) as yellow_share,
        cast(round(by_csm.red_companies / nullif(cast(by_csm.companies - by_csm.companies_without_status as numeric), 0), 6)
            as numeric(12,6)) as red_share,
        cast(by_csm.status_transitions_7d as integer) as status_transitions_7d,
        cast(by_csm.status_worsened_7d as integer) as status_worsened_7d,
        cast(by_csm.status_improved_7d as integer) as status_improved_7d,

        -- QBR rate of Tier 1 and 2: a QBR in the three months ending on the run date
        cast(by_csm.tier_1_2_companies as integer) as tier_1_2_companies,
        cast(by_csm.tier_1_2_with_qbr as integer) as tier_1_2_with_qbr,
        cast(round(by_csm.tier_1_2_with_qbr / nullif(cast(by_csm.tier_1_2_companies as numeric), 0), 6)
            as numeric(12,6)) as qbr_rate_tier_1_2,
        cast(qbr_target.target_value as numeric(12,6)) as qbr_rate_tier_1_2_target,

        -- expansion proposals this month against the target (per CSM; the team's is per CSM × CSMs)
        cast(by_csm.expansion_proposals_mtd as integer) as expansion_proposals_mtd,
        cast(case
            when by_csm.is_team_total then proposals_target.target_value * by_csm.csms
            when by_csm.csm_user_id is not null then proposals_target.target_value
        end as numeric(12,2)) as expansion_proposals_target,

        -- tasks
        cast(by_csm.open_tasks as integer) as open_tasks,
        cast(by_csm.overdue_tasks as integer) as overdue_tasks

    from by_csm
    left join targets_in_force as qbr_target
        on qbr_target.kpi_key = 'qbr_rate_tier_1_2'
    left join targets_in_force as proposals_target
        on proposals_target.kpi_key = 'expansion_proposals_per_csm'

)

select * from final
