with

source as (

    select * from {{ source('board', 'invoice_details') }}
    -- a line removed from its invoice in board: kept in raw, flagged, left out here (the lines of a deleted
    -- invoice are left out where they meet stg_board__invoices)
    where _deleted_at is null

),

final as (

    select
        -- ids
        {{ generate_surrogate_key(['invoice_id', 'no']) }} as invoice_line_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(no as integer) as line_number,

        -- attributes
        description,
        unit,

        -- amounts (JPY, excluding tax)
        cast(unit_price as numeric) as unit_price_jpy,
        cast(quantity as numeric) as quantity,
        cast(price as numeric) as amount_jpy,
        cast(tax_rate as numeric) as tax_rate_pct,

        -- timestamps (UTC)
        _loaded_at as loaded_at

    from source

)

select * from final
