-- One row per company (int_companies_identified) as of run_date: who it is in each system, its CSM, its
-- contract, the plan it is on, and its Tier and touch model from the Tier matrix. The Tier is the matrix's
-- answer for the company's annual contract value band × its growth potential; the value is Salesforce's
-- Annual_Contract_Value__c, else the last closed month's MRR × 12 from board. A company without a growth
-- potential (no Salesforce account, or the field empty) or without any contract value has no Tier.

with

companies as (

    select * from {{ ref('int_companies_identified') }}

),

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

tenants as (

    select * from {{ ref('stg_nexpro__tenants') }}

),

plans as (

    select * from {{ ref('stg_nexpro__plans') }}

),

usage as (

    select * from {{ ref('fct_tenant_daily_usage') }}

),

company_months as (

    select * from {{ ref('fct_mrr_company_monthly') }}

),

contract_value_bands as (

    select * from {{ ref('contract_value_bands') }}

),

tier_matrix as (

    select * from {{ ref('tier_matrix') }}

),

last_closed_month_mrr as (

    select
        company_id,
        closing_mrr
    from company_months
    where month_start = {{ dbt.dateadd('month', -1, dbt.date_trunc('month', run_date())) }}

),

usage_on_run_date as (

    select
        tenant_id,
        plan_id,
        is_under_contract
    from usage
    where usage_date = {{ run_date() }}

),

bands as (

    -- Each band runs from its minimum up to the next band's minimum (the top band has no upper end).
    select
        contract_value_band,
        min_annual_value_jpy,
        lead(min_annual_value_jpy) over (order by min_annual_value_jpy) as next_band_min_jpy
    from contract_value_bands

),

valued as (

    select
        companies.company_id,
        companies.company_name,
        companies.account_id,
        companies.tenant_id,
        companies.board_client_id,
        companies.match_status,
        companies.csm_user_id,
        companies.csm_name,
        companies.tier as salesforce_tier,
        accounts.growth_potential,
        accounts.account_type,
        accounts.industry,
        coalesce(accounts.contract_start_date, tenants.contract_started_date) as contract_start_date,
        accounts.renewal_date,
        accounts.annual_contract_value_jpy,
        last_closed_month_mrr.closing_mrr as last_closed_month_mrr,
        case
            when accounts.annual_contract_value_jpy > 0 then accounts.annual_contract_value_jpy
            when last_closed_month_mrr.closing_mrr > 0 then last_closed_month_mrr.closing_mrr * 12
        end as contract_value_jpy,
        case
            when accounts.annual_contract_value_jpy > 0 then 'salesforce_annual_contract_value'
            when last_closed_month_mrr.closing_mrr > 0 then 'board_mrr_x12'
        end as contract_value_source,
        coalesce(usage_on_run_date.plan_id, tenants.current_plan_id) as current_plan_id,
        case
            when companies.tenant_id is not null then coalesce(usage_on_run_date.is_under_contract, false)
            when companies.account_id is not null then coalesce(accounts.account_type = 'Customer', false)
            else coalesce(last_closed_month_mrr.closing_mrr > 0, false)
        end as is_customer
    from companies
    left join accounts
        on companies.account_id = accounts.account_id
    left join tenants
        on companies.tenant_id = tenants.tenant_id
    left join usage_on_run_date
        on companies.tenant_id = usage_on_run_date.tenant_id
    left join last_closed_month_mrr
        on companies.company_id = last_closed_month_mrr.company_id

),

tiered as (

    select
        valued.*,
        bands.contract_value_band,
        tier_matrix.tier,
        tier_matrix.touch_model
    from valued
    left join bands
        on valued.contract_value_jpy >= bands.min_annual_value_jpy
        and (bands.next_band_min_jpy is null or valued.contract_value_jpy < bands.next_band_min_jpy)
    left join tier_matrix
        on bands.contract_value_band = tier_matrix.contract_value_band
        and valued.growth_potential = tier_matrix.growth_potential

),

final as (

    select
        -- keys
        cast(tiered.company_id as text) as company_id,
        cast(tiered.account_id as text) as account_id,
        cast(tiered.tenant_id as bigint) as tenant_id,
        cast(tiered.board_client_id as bigint) as board_client_id,
        cast(tiered.csm_user_id as text) as csm_user_id,

        -- who
        cast(tiered.company_name as text) as company_name,
        cast(tiered.csm_name as text) as csm_name,
        cast(tiered.industry as text) as industry,
        cast(tiered.match_status as text) as match_status,
        cast(tiered.account_type as text) as account_type,
        cast(tiered.is_customer as boolean) as is_customer,

        -- contract
        cast(tiered.contract_start_date as date) as contract_start_date,
        cast(tiered.renewal_date as date) as renewal_date,
        cast(tiered.current_plan_id as integer) as current_plan_id,
        cast(plans.plan_code as text) as current_plan_code,
        cast(plans.plan_name as text) as current_plan_name,
        cast(tiered.annual_contract_value_jpy as numeric(18,2)) as annual_contract_value_jpy,
        cast(tiered.last_closed_month_mrr as numeric(18,2)) as last_closed_month_mrr,

        -- tier
        cast(tiered.contract_value_jpy as numeric(18,2)) as contract_value_jpy,
        cast(tiered.contract_value_source as text) as contract_value_source,
        cast(tiered.contract_value_band as text) as contract_value_band,
        cast(tiered.growth_potential as text) as growth_potential,
        cast(tiered.tier as text) as tier,
        cast(tiered.touch_model as text) as touch_model,
        cast(tiered.salesforce_tier as text) as salesforce_tier,
        cast(tiered.salesforce_tier is distinct from tiered.tier and tiered.tier is not null as boolean)
            as is_salesforce_tier_out_of_date,

        -- lineage
        cast({{ run_date() }} as date) as as_of_date

    from tiered
    left join plans
        on tiered.current_plan_id = plans.plan_id

)

select * from final
