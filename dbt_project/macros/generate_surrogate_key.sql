{#
    A stable text key from several columns (md5 of their values joined by '-'), for models whose grain
    is a combination such as (tenant_id, usage_date). Nulls are spelled out so (1, null) and (null, 1)
    differ. Same idea as dbt_utils.generate_surrogate_key, which this project does not install.
#}
{% macro generate_surrogate_key(column_names) -%}
    {%- set fields = [] -%}
    {%- for column_name in column_names -%}
        {%- do fields.append(
            "coalesce(cast(" ~ column_name ~ " as " ~ dbt.type_string() ~ "), '_dbt_null_')"
        ) -%}
        {%- if not loop.last -%}
            {%- do fields.append("'-'") -%}
        {%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(fields)) }}
{%- endmacro %}
