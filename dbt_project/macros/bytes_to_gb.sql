{#
    Bytes to gigabytes as plans count them (GiB, 1024^3 bytes), so transfer volumes and
    storage_gb_limit use the same unit.
#}
{% macro bytes_to_gb(column_name) -%}
    ({{ column_name }} / cast(1073741824 as numeric))
{%- endmacro %}

{% macro gb_to_bytes(column_name) -%}
    ({{ column_name }} * cast(1073741824 as numeric))
{%- endmacro %}
