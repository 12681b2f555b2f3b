{#
    One row per health status override a CSM set by hand (seed health_status_overrides), with the
    company it names: the row's company_id, or the company of its account_id. `is_known_company` is false
    when neither names a company of int_companies_identified; the data test
    assert_health_overrides_name_known_companies warns on such a row, naming it (it overrides nobody).
#}

with

overrides as (

    select * from {{ ref('health_status_overrides') }}

),

companies as (

    select * from {{ ref('int_companies_identified') }}

),

resolved as (

    select
        overrides.*,
        coalesce(by_company.company_id, by_account.company_id) as resolved_company_id,
        coalesce(by_company.account_id, by_account.account_id) as resolved_account_id
    from overrides
    left join companies as by_company
        on overrides.company_id = by_company.company_id
    left join companies as by_account
        on overrides.company_id is null
        and overrides.account_id = by_account.account_id

),

final as (

    select
        cast({{ generate_surrogate_key(['company_id', 'account_id', 'set_on', 'status', 'expires_on']) }} as text)
            as override_id,
        cast(coalesce(resolved_company_id, company_id) as text) as company_id,
        cast(coalesce(resolved_account_id, account_id) as text) as account_id,
        cast(company_id as text) as named_company_id,
        cast(account_id as text) as named_account_id,
        cast(resolved_company_id is not null as boolean) as is_known_company,
        cast(status as text) as override_status,
        cast(reason as text) as override_reason,
        cast(set_by as text) as set_by,
        cast(set_on as date) as set_on,
        cast(expires_on as date) as expires_on
    from resolved

)

select * from final
