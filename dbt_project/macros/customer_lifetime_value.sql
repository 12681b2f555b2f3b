{#
    Customer lifetime value: what a customer is worth over its life,
    average purchase × purchases per period × lifespan in periods. With a month as the period,
    LTV = ARPA × 1 × (1 ÷ monthly revenue churn rate) = ARPA ÷ monthly revenue churn rate.
    Example: 50 a purchase, 4 purchases a year, 5 years = 50 × 4 × 5 = 1,000.
    Arguments are SQL expressions; null in, null out.
#}
{% macro customer_lifetime_value(avg_purchase, frequency, lifespan) -%}
    (({{ avg_purchase }}) * ({{ frequency }}) * ({{ lifespan }}))
{%- endmacro %}
