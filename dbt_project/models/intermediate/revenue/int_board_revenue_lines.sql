-- One row per line item of a live board invoice, with the company it bills, whether it is recurring
-- (MRR) or a paid service, plan or option, and the service months it covers. Amounts are JPY excluding
-- tax; a credit note's lines are negative. Every invoice status counts, written-off ones included.

with

lines as (

    select * from {{ ref('stg_board__invoice_lines') }}

),

invoices as (

    select * from {{ ref('stg_board__invoices') }}

),

projects as (

    select * from {{ ref('stg_board__projects') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}
    where board_client_id is not null

),

categories as (

    select * from {{ ref('board_line_item_categories') }}

),

lines_with_invoice as (

    select
        lines.invoice_line_id,
        lines.invoice_id,
        lines.line_number,
        lines.description,
        lines.amount_jpy,
        invoices.project_id,
        invoices.client_id,
        invoices.invoice_status,
        invoices.is_credit_note,
        invoices.service_period_start_date,
        invoices.service_period_end_date,
        projects.invoice_timing
    from lines
    -- the lines of a deleted invoice are left out with it
    inner join invoices
        on lines.invoice_id = invoices.invoice_id
    left join projects
        on invoices.project_id = projects.project_id

),

final as (

    select
        lines_with_invoice.invoice_line_id,
        lines_with_invoice.invoice_id,
        lines_with_invoice.line_number,
        lines_with_invoice.project_id,
        lines_with_invoice.client_id,
        companies.company_id,
        lines_with_invoice.description,
        lines_with_invoice.invoice_status,
        lines_with_invoice.is_credit_note,
        lines_with_invoice.invoice_timing,
        case
            when lines_with_invoice.invoice_timing = 'recurring' then 'recurring'
            when lines_with_invoice.invoice_timing in ('one_off', 'instalments') then 'paid_service'
        end as revenue_type,
        case
            when lines_with_invoice.invoice_timing = 'recurring' then coalesce(category.line_category, 'plan')
        end as line_category,
        category.description_pattern as matched_pattern,
        lines_with_invoice.amount_jpy,
        lines_with_invoice.service_period_start_date,
        lines_with_invoice.service_period_end_date,
        cast(date_trunc('month', lines_with_invoice.service_period_start_date) as date) as first_service_month,
        -- Whole months from the period's start to the day after its end: 1 for a month billed on its own
        -- (also a first month starting mid-month), 12 for an annual prepaid year (2025-03-15 to
        -- 2026-03-14). Each month of service counts in the calendar month it begins in.
        greatest(
            1,
            (extract(year from lines_with_invoice.service_period_end_date + 1) * 12
                + extract(month from lines_with_invoice.service_period_end_date + 1))
            - (extract(year from lines_with_invoice.service_period_start_date) * 12
                + extract(month from lines_with_invoice.service_period_start_date))
        )::integer as service_months
    from lines_with_invoice
    left join companies
        on lines_with_invoice.client_id = companies.board_client_id
    left join lateral (
        select categories.line_category, categories.description_pattern
        from categories
        where lines_with_invoice.description ilike categories.description_pattern
        order by categories.match_order
        limit 1
    ) as category on true

)

select * from final
