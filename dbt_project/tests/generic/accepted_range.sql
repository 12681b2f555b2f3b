{#
    Fails for every row whose `column_name` lies outside [min_value, max_value] (bounds inclusive;
    either may be left out). Nulls pass: pair with not_null where they should not.
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

    select {{ column_name }}
    from {{ model }}
    where
        {%- if min_value is none and max_value is none %}
        {{ exceptions.raise_compiler_error("accepted_range needs min_value, max_value or both") }}
        {%- endif %}
        false
        {%- if min_value is not none %}
        or {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
        or {{ column_name }} > {{ max_value }}
        {%- endif %}

{% endtest %}
