-- One row per company and month, from the company's first billed month through the last closed month
-- (the month before run_date's: a month's invoice is drafted near its end), gap-free: recurring revenue
-- split into plan and option MRR, and paid-services revenue. Each invoice line is spread evenly over the
-- months of its service period (an annual prepaid invoice counts 1/12 in each of its twelve months); a
-- credit note nets into the months it refunds.

with

lines as (

    select * from {{ ref('int_board_revenue_lines') }}

),

spread as (

    -- Each month's share is rounded to the sen; the last month takes the remainder, so the shares add
    -- up to the line amount exactly.
    select
        lines.company_id,
        lines.revenue_type,
        lines.line_category,
        cast(lines.first_service_month + make_interval(months => month_index) as date) as month_start,
        case
            when month_index < lines.service_months - 1 then round(lines.amount_jpy / lines.service_months, 2)
            else lines.amount_jpy - round(lines.amount_jpy / lines.service_months, 2) * (lines.service_months - 1)
        end as amount_jpy
    from lines
    cross join lateral generate_series(0, lines.service_months - 1) as month_index

),

last_closed_month as (

    select cast(date_trunc('month', {{ run_date() }}) - interval '1 month' as date) as month_start

),

companies_billed as (

    select
        spread.company_id,
        min(spread.month_start) as first_billed_month
    from spread
    group by spread.company_id

),

spine as (

    select
        companies_billed.company_id,
        cast(month_series as date) as month_start
    from companies_billed
    cross join last_closed_month
    cross join lateral generate_series(
        companies_billed.first_billed_month, last_closed_month.month_start, interval '1 month'
    ) as month_series

),

monthly as (

    select
        company_id,
        month_start,
        sum(amount_jpy) filter (where revenue_type = 'recurring' and line_category = 'plan') as plan_amount_jpy,
        sum(amount_jpy) filter (where revenue_type = 'recurring' and line_category = 'option') as option_amount_jpy,
        sum(amount_jpy) filter (where revenue_type = 'paid_service') as paid_services_amount_jpy
    from spread
    group by company_id, month_start

),

final as (

    -- A month whose credits exceed its charges counts as zero MRR, not negative.
    select
        spine.company_id,
        spine.month_start,
        cast(greatest(coalesce(monthly.plan_amount_jpy, 0), 0) as numeric(18,2)) as plan_mrr,
        cast(greatest(coalesce(monthly.option_amount_jpy, 0), 0) as numeric(18,2)) as option_mrr,
        cast(
            greatest(coalesce(monthly.plan_amount_jpy, 0), 0) + greatest(coalesce(monthly.option_amount_jpy, 0), 0)
            as numeric(18,2)
        ) as mrr,
        cast(coalesce(monthly.paid_services_amount_jpy, 0) as numeric(18,2)) as paid_services_revenue
    from spine
    left join monthly
        on spine.company_id = monthly.company_id
        and spine.month_start = monthly.month_start

)

select * from final
