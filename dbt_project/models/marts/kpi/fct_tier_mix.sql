-- The Tier and touch-model mix as of run_date: one row per tier (and touch model) with the customers in it,
-- their share, their MRR of the last closed month, and the CSMs who look after them. Customers without a
-- Tier (no growth potential or contract value known) are the row 'unassigned'.

with

companies as (

    select * from {{ ref('dim_companies') }}

),

customers as (

    select
        coalesce(tier, 'unassigned') as tier,
        coalesce(touch_model, 'unassigned') as touch_model,
        company_id,
        csm_user_id,
        coalesce(last_closed_month_mrr, 0) as mrr
    from companies
    where is_customer

),

per_tier as (

    select
        tier,
        touch_model,
        count(*) as customers,
        sum(mrr) as mrr,
        count(distinct csm_user_id) as csms
    from customers
    group by tier, touch_model

),

final as (

    select
        cast(tier as text) as tier,
        cast(touch_model as text) as touch_model,
        cast(customers as integer) as customers,
        cast(round(customers / sum(customers) over (), 6) as numeric(18,6)) as share_of_customers,
        cast(mrr as numeric(18,2)) as mrr,
        cast(round(mrr / nullif(sum(mrr) over (), 0), 6) as numeric(18,6)) as share_of_mrr,
        cast(csms as integer) as csms,
        cast(round(customers / nullif(cast(csms as numeric), 0), 2) as numeric(18,2)) as customers_per_csm,
        cast({{ run_date() }} as date) as as_of_date
    from per_tier

)

select * from final
