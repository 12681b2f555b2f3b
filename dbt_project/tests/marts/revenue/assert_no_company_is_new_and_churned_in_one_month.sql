-- A company cannot start and leave in the same month: a contract that starts and is cancelled within
-- one month is new in that month and churned in the next.

select *
from {{ ref('fct_mrr_company_monthly') }}
where (new_mrr > 0 or reactivation_mrr > 0)
    and churn_mrr > 0
