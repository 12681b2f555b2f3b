{#
    `column_name` when `relation` has it, else a typed null: for a source field the source system is
    still gaining, so the model builds before and after the field arrives in raw. Looked up when the
    model runs (at parse time, and before the field exists, it is null).
#}
{% macro column_or_null(relation, column_name, data_type) -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do names.append(column.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if column_name | lower in names -%}
        {{ column_name }}
    {%- else -%}
        cast(null as {{ data_type }})
    {%- endif -%}
{%- endmacro %}
