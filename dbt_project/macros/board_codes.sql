{#
    board's codes (integers in its API) as names: `board_code('invoice_status', 'invoice_status')` is the
    English key ('paid'), `board_code('invoice_status', 'invoice_status', 'ja')` board's Japanese name
    (入金済). A code board adds later gives null, which the staging tests report.
#}
{% macro board_code(column_name, code_type, language='en') -%}
    {%- set codes = {
        'order_status': {
            1: ('quoting', '見積中(高)'), 2: ('quoting', '見積中(中)'), 3: ('quoting', '見積中(低)'),
            8: ('quoting', '見積中(除)'), 4: ('confirmed', '受注確定'), 5: ('ordered', '受注済'), 9: ('lost', '失注'),
        },
        'invoice_status': {
            1: ('drafted', '未請求'), 4: ('approved', '請求OK'), 2: ('sent', '請求済'),
            5: ('partly_paid', '一部入金済'), 3: ('paid', '入金済'), 9: ('written_off', '回収不能'),
        },
        'invoice_timing': {
            1: ('one_off', '一括請求'), 2: ('recurring', '定期請求'), 3: ('instalments', '分割請求'),
        },
    } -%}
    {%- if code_type not in codes -%}
        {{ exceptions.raise_compiler_error("board_code: no code list '" ~ code_type ~ "'; use one of "
                                           ~ (codes.keys() | join(', '))) }}
    {%- endif -%}
    case {{ column_name }}
        {%- for code, names in codes[code_type].items() %}
        when {{ code }} then '{{ names[1] if language == 'ja' else names[0] }}'
        {%- endfor %}
    end
{%- endmacro %}
