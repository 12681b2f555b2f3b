{#
    A model's custom schema (`+schema: staging`) is used as-is instead of dbt's default
    `<target_schema>_<custom_schema>`, so every environment has the same schema names:
    staging, intermediate, marts, reference (seeds). Nodes without one land in the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
