{{ config(severity='warn') }}
-- Recurring board lines no pattern of the board_line_item_categories seed matches: they count as plan
-- MRR, so a new option would show as upsell instead of cross-sell. Add a pattern to the seed.

select
    description,
    count(*) as lines,
    min(invoice_id) as example_invoice_id
from {{ ref('int_board_revenue_lines') }}
where revenue_type = 'recurring'
    and matched_pattern is null
group by description
