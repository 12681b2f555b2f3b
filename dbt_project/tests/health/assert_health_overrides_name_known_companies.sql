-- Every hand-set health status (seed health_status_overrides) names a company the warehouse has, by company_id or
-- by account_id. A row naming no such company (a typo, a company not in this warehouse) overrides nobody, so it
-- warns with the row and the fix instead of stopping the day's scores for every other company.
{{ config(severity='warn') }}

with

overrides as (

    select * from {{ ref('int_health_status_overrides') }}

),

final as (

    select
        named_company_id,
        named_account_id,
        override_status,
        set_on,
        'health_status_overrides.csv: the row for '
            || coalesce('company_id ' || named_company_id, 'account_id ' || named_account_id)
            || ' set on ' || coalesce(cast(set_on as text), '(empty)')
            || ': no such company; use a company_id of fct_health_scores or an Account Id of Salesforce'
            as problem
    from overrides
    where not is_known_company
        and (named_company_id is not null or named_account_id is not null)

)

select * from final
