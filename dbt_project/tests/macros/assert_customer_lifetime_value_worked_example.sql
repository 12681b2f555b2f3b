-- The macro's worked example: 50 a purchase x 4 purchases a year x 5 years = 1,000; and null in, null out.

select 'worked example' as failing_case
where {{ customer_lifetime_value(50, 4, 5) }} <> 1000
union all
select 'null lifespan' as failing_case
where {{ customer_lifetime_value(5000, 1, 'cast(null as numeric)') }} is not null
