{#
    The measures the health rubric's thresholds may name (seed health_thresholds, column `measure`): columns
    of int_health_indicator_values, put in long form by int_health_measures. The rubric test
    assert_health_thresholds_name_known_measures fails a threshold naming any other.
#}
{% macro health_measures() -%}
    {{ return([
        'login_days_30d',
        'webinars_held_30d',
        'feature_depth_rank_30d',
        'goal_achievement_rate',
        'attendee_trend_ratio',
        'touchpoints_30d',
        'touchpoints_60d',
        'key_persons',
        'months_to_renewal',
    ]) }}
{%- endmacro %}
