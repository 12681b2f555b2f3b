-- Every hand-set health status (seed health_status_overrides) names a company (by company_id, or by account_id
-- when company_id is empty), sets a status of health_status_bands, gives a reason and who set it, and has
-- set_on on or before expires_on. Fails with the row and the fix. A row naming a company the warehouse does
-- not have is a warning of its own (assert_health_overrides_name_known_companies): it applies to nobody.

with

overrides as (

    select * from {{ ref('int_health_status_overrides') }}

),

bands as (

    select * from {{ ref('health_status_bands') }}

),

final as (

    select
        named_company_id,
        named_account_id,
        override_status,
        set_on,
        expires_on,
        'health_status_overrides.csv: the row for '
            || coalesce('company_id ' || named_company_id, 'account_id ' || named_account_id, 'no company')
            || ' set on ' || coalesce(cast(set_on as text), '(empty)') || ': '
            || case
                when named_company_id is null and named_account_id is null
                    then 'give the company_id (or the account_id) it applies to'
                when override_status is null
                    or override_status not in (select health_status from bands)
                    then 'status ' || coalesce(override_status, '(empty)') || ' is not one of '
                        || (select string_agg(health_status, ', ' order by band_order desc) from bands)
                when override_reason is null or trim(override_reason) = '' then 'give the reason'
                when set_by is null or trim(set_by) = '' then 'say who set it (set_by)'
                else 'set_on and expires_on must both be given, set_on on or before expires_on'
            end as problem
    from overrides
    where (named_company_id is null and named_account_id is null)
        or override_status is null
        or override_status not in (select health_status from bands)
        or override_reason is null or trim(override_reason) = ''
        or set_by is null or trim(set_by) = ''
        or set_on is null or expires_on is null or set_on > expires_on

)

select * from final
