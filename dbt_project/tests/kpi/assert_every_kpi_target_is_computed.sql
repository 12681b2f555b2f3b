-- Every KPI of the kpi_targets seed has rows in fct_kpi_monthly: a target for a KPI no model computes
-- (a misspelt kpi_key, or a KPI still to be built) would otherwise go unnoticed. CS-originated revenue share
-- has no target row because nothing records which deals CS originated.

select distinct
    targets.kpi_key,
    'no row in fct_kpi_monthly' as problem,
    'spell the kpi_key as fct_kpi_monthly does, or compute the KPI in int_kpi_actuals_monthly' as fix
from {{ ref('kpi_targets') }} as targets
left join {{ ref('fct_kpi_monthly') }} as kpis
    on targets.kpi_key = kpis.kpi_key
where kpis.kpi_key is null
