with

source as (

    select * from {{ source('board', 'projects') }}
    where _deleted_at is null  -- deleted in board: kept in raw, flagged, left out here

),

final as (

    select
        -- ids
        cast(id as bigint) as project_id,
        cast(client_id as bigint) as client_id,
        cast(project_no as text) as project_no,

        -- attributes
        name as project_name,
        cast(order_status as integer) as order_status_code,
        {{ board_code('order_status', 'order_status') }} as order_status,
        {{ board_code('order_status', 'order_status', 'ja') }} as order_status_name_ja,
        cast(invoice_timing_kbn as integer) as invoice_timing_code,
        {{ board_code('invoice_timing_kbn', 'invoice_timing') }} as invoice_timing,
        {{ board_code('invoice_timing_kbn', 'invoice_timing', 'ja') }} as invoice_timing_name_ja,

        -- flags
        invoice_timing_kbn = 2 as is_recurring,

        -- dates (as entered in board)
        ordered_date,
        contract_start_date,
        contract_end_date,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from final
