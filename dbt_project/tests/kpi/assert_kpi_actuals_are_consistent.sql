-- Every row of fct_kpi_monthly: a ratio KPI lies within 0..1 (NRR excepted: it can exceed 100%), its
-- numerator is at most its denominator (again NRR excepted), the actual is numerator ÷ denominator to the
-- rounding, an actual is null only when its base is 0, and a row has a reason exactly when it has no actual
-- (and then no on/off-target verdict).

select *
from {{ ref('fct_kpi_monthly') }}
where (unit = 'ratio' and kpi_key <> 'nrr_t12m' and (actual < 0 or actual > 1 or numerator > denominator))
    or (unit = 'ratio' and denominator > 0 and abs(actual - numerator / denominator) > 0.000001)
    or (unit in ('ratio', 'days', 'count') and (actual is null) <> (coalesce(denominator, 0) = 0))
    or (actual is null) <> (reason is not null)
    or (actual is null and is_on_target is not null)
    or numerator < 0
    or denominator < 0
