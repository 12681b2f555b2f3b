{#
    The KPIs int_kpi_actuals_monthly computes, each with the months it is measured in:
    - closed_months: every closed month of fct_revenue_monthly (the revenue KPIs);
    - product_history: the closed months from the first month of the recorded product history (the leading
      indicators);
    - last_closed_month: the last closed month only (Salesforce data completeness: only today's state is known).
    Each KPI has a row for each of its months; a month where it has no actual says why (column reason).
    assert_every_kpi_target_is_computed checks the kpi_targets seed's keys against this list.
#}
{% macro kpi_tree() %}
    {{ return({
        'nrr_t12m': 'closed_months',
        'gross_churn_rate_t12m': 'closed_months',
        'expansion_rate_t12m': 'closed_months',
        'paid_services_revenue_t12m': 'closed_months',
        'green_ratio': 'product_history',
        'red_ratio': 'product_history',
        'onboarding_completion_rate': 'product_history',
        'time_to_first_value_days': 'product_history',
        'outcome_definition_rate': 'product_history',
        'outcome_achieving_rate': 'product_history',
        'qbr_rate_tier_1_2': 'product_history',
        'expansion_proposals_per_csm': 'product_history',
        'proposal_close_rate': 'product_history',
        'usage_auto_sync_rate': 'product_history',
        'salesforce_data_completeness': 'last_closed_month',
    }) }}
{% endmacro %}
