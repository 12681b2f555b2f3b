-- One row per cohort (companies grouped by the month of their first MRR) and age (months since that
-- month), through the last closed month: how much of the cohort's starting MRR, and how many of its
-- companies, remain. MRR retention can exceed 1 (expansion); a company that left and came back counts
-- again from the month it returns.

with

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}
    where first_mrr_month is not null
        and month_start >= first_mrr_month

),

cohort_months as (

    select
        first_mrr_month as cohort_month,
        month_start,
        cast((extract(year from month_start) - extract(year from first_mrr_month)) * 12
            + extract(month from month_start) - extract(month from first_mrr_month) as integer) as months_since_start,
        count(*) as companies,
        count(*) filter (where closing_mrr > 0) as active_companies,
        sum(closing_mrr) as mrr
    from company_months
    group by first_mrr_month, month_start

),

final as (

    select
        {{ generate_surrogate_key(['cohort_month', 'months_since_start']) }} as cohort_age_id,
        cohort_month,
        months_since_start,
        month_start,
        cast(companies as integer) as cohort_companies,
        cast(first_value(mrr) over cohort as numeric(18,2)) as cohort_start_mrr,
        cast(active_companies as integer) as active_companies,
        cast(mrr as numeric(18,2)) as mrr,
        cast(round(mrr / nullif(first_value(mrr) over cohort, 0), 6) as numeric(12,6)) as mrr_retention,
        cast(round(active_companies / nullif(companies, 0)::numeric, 6) as numeric(12,6)) as logo_retention,
        {{ run_date() }} as computed_for_run_date
    from cohort_months
    window cohort as (partition by cohort_month order by months_since_start)

)

select * from final
