with

source as (

    select * from {{ source('board', 'invoices') }}
    where _deleted_at is null  -- deleted in board: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(id as bigint) as invoice_id,
        cast(project_id as bigint) as project_id,
        cast(client_id as bigint) as client_id,
        invoice_no,

        -- attributes
        cast(invoice_status as integer) as invoice_status_code,
        {{ board_code('invoice_status', 'invoice_status') }} as invoice_status,
        {{ board_code('invoice_status', 'invoice_status', 'ja') }} as invoice_status_name_ja,

        -- amounts (JPY): board's total excludes tax
        cast(total as numeric) as amount_excl_tax_jpy,
        cast(tax as numeric) as tax_jpy,
        cast(total as numeric) + cast(tax as numeric) as amount_incl_tax_jpy,

        -- flags
        cast(total as numeric) < 0 as is_credit_note,

        -- dates (as entered in board)
        invoice_date,
        payment_limit_date as payment_due_date,
        paid_date,
        -- The service the invoice bills. When board sends no period, the invoice's own month.
        coalesce(service_period_start, cast(date_trunc('month', invoice_date) as date)) as service_period_start_date,
        coalesce(
            service_period_end,
            cast(date_trunc('month', invoice_date) + interval '1 month' - interval '1 day' as date)
        ) as service_period_end_date,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
