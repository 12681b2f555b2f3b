-- Every KPI of the kpi_targets seed is one the KPI models compute (macro kpi_tree): a target for a KPI no model
-- computes (a misspelt kpi_key, or a KPI still to be built) would otherwise go unnoticed. A KPI with nobody
-- eligible in a month is not a failure: its row says why (fct_kpi_monthly.reason). CS-originated revenue share
-- has no target row because nothing records which deals CS originated.

with

targets as (

    select * from {{ ref('kpi_targets') }}

),

computed as (

    {%- for kpi_key in kpi_tree() %}
    select '{{ kpi_key }}' as kpi_key{{ ' union all' if not loop.last }}
    {%- endfor %}

)

select distinct
    targets.kpi_key,
    'kpi_targets.csv names a KPI that no model computes' as problem,
    'spell the kpi_key as one of: {{ kpi_tree().keys() | sort | join(", ") }}; or compute the KPI in '
        || 'int_kpi_actuals_monthly and add it to macros/kpi_tree.sql' as fix
from targets
left join computed
    on targets.kpi_key = computed.kpi_key
where computed.kpi_key is null
