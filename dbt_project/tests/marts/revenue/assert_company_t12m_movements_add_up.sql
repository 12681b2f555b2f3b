-- For a company in the trailing-twelve-month cohort (MRR twelve months earlier):
-- MRR then + rise - fall = MRR now, and NRR12 = MRR now / MRR then. Outside it, no rise or fall.

select *
from {{ ref('fct_mrr_company_monthly') }}
where (mrr_12_months_ago > 0 and (
        mrr_12_months_ago + expansion_mrr_t12m - gross_churn_mrr_t12m <> closing_mrr
        or abs(nrr_t12m - closing_mrr / mrr_12_months_ago) > 0.000001
    ))
    or (mrr_12_months_ago = 0 and (expansion_mrr_t12m <> 0 or gross_churn_mrr_t12m <> 0 or nrr_t12m is not null))
