{#
    Rubric versions of the health score (docs/metrics.md, "Rubric versions").

    A rubric version is the content of the rubric seeds that decide a score: health_indicators,
    health_thresholds, health_status_bands, health_settings, and the label `rubric_version` of
    health_rubric_version (its `note` and the CSMs' overrides are not part of it). Its `definition` is that
    content as one jsonb document, each seed's rows in key order; its hash is md5 of the document's text. The
    same content always gives the same hash; any change to a value gives another one.

    health_rubric_definition() builds (rubric_version, definition, rubric_hash) from relations or CTEs with
    the seeds' columns and types: int_health_rubric reads the seeds; `csops rubric diff` passes the working
    copy's CSV rows (health_rubric_proposal()).

    health_scores_under_rubrics() scores company-days under any stored rubric version, for the rubric-change
    cause in fct_health_scores and for `csops rubric diff`. It follows int_health_indicator_scores and
    fct_health_scores (an indicator's score is the highest whose min_value its measure reaches, else its lowest;
    an indicator without data is left out; the total is the weighted mean of the present scores, rounded to two
    decimals; the status is the highest band the total reaches). The data test
    assert_health_rubric_rescoring_reproduces_scores holds the two to the same answer.
#}

{% macro health_rubric_definition(indicators, thresholds, bands, settings, version) -%}
    select
        cast(version_row.rubric_version as text) as rubric_version,
        definition.definition,
        cast(md5(definition.definition::text) as text) as rubric_hash
    from (select * from {{ version }}) as version_row
    cross join lateral (
        select jsonb_build_object(
            'rubric_version', version_row.rubric_version,
            'indicators', (
                select jsonb_agg(jsonb_build_object(
                    'indicator_key', i.indicator_key, 'category', i.category, 'indicator_name', i.indicator_name,
                    'weight', i.weight, 'value_format', i.value_format, 'reason_template', i.reason_template,
                    'reason_template_ja', i.reason_template_ja, 'display_order', i.display_order) order by i.indicator_key)
                from {{ indicators }} as i
            ),
            'thresholds', (
                select jsonb_agg(jsonb_build_object(
                    'indicator_key', t.indicator_key, 'score', t.score, 'measure', t.measure,
                    'window_days', t.window_days, 'min_value', t.min_value) order by t.indicator_key, t.score)
                from {{ thresholds }} as t
            ),
            'status_bands', (
                select jsonb_agg(jsonb_build_object(
                    'health_status', b.health_status, 'min_total_score', b.min_total_score,
                    'band_order', b.band_order) order by b.band_order)
                from {{ bands }} as b
            ),
            'settings', (
                select jsonb_agg(jsonb_build_object(
                    'setting_key', s.setting_key, 'setting_value', s.setting_value) order by s.setting_key)
                from {{ settings }} as s
            )
        ) as definition
    ) as definition
{%- endmacro %}


{#-
    The working copy's rubric, from var('rubric_proposal'): {"health_indicators": [rows], "health_thresholds":
    [...], "health_status_bands": [...], "health_settings": [...], "health_rubric_version": [...]}, each row a
    CSV row as text (an empty cell as null). Cast to the seeds' column types, so that an unchanged rubric has
    the hash of the one the warehouse holds. Used by `csops rubric diff`.
-#}
{% macro health_rubric_proposal() -%}
    {%- set proposal = var('rubric_proposal', none) -%}
    {%- if proposal is none -%}
        {{ exceptions.raise_compiler_error("health_rubric_proposal() needs var('rubric_proposal'): the rubric "
                                           "seeds' rows (csops rubric diff passes them)") }}
    {%- endif -%}
    {%- set document = csops.sql_text(tojson(proposal)) ~ '::jsonb' -%}
    with
    proposed_indicators as (
        select
            cast(indicator_key as text) as indicator_key, cast(category as text) as category,
            cast(indicator_name as text) as indicator_name, cast(weight as numeric(6, 4)) as weight,
            cast(value_format as text) as value_format, cast(reason_template as text) as reason_template,
            cast(reason_template_ja as text) as reason_template_ja, cast(display_order as integer) as display_order
        from jsonb_to_recordset({{ document }} -> 'health_indicators') as r (
            indicator_key text, category text, indicator_name text, weight text, value_format text,
            reason_template text, reason_template_ja text, display_order text)
    ),
    proposed_thresholds as (
        select
            cast(indicator_key as text) as indicator_key, cast(score as integer) as score,
            cast(nullif(measure, '') as text) as measure, cast(nullif(window_days, '') as integer) as window_days,
            cast(nullif(min_value, '') as numeric(12, 4)) as min_value
        from jsonb_to_recordset({{ document }} -> 'health_thresholds') as r (
            indicator_key text, score text, measure text, window_days text, min_value text)
    ),
    proposed_bands as (
        select
            cast(health_status as text) as health_status, cast(min_total_score as numeric(4, 2)) as min_total_score,
            cast(band_order as integer) as band_order
        from jsonb_to_recordset({{ document }} -> 'health_status_bands') as r (
            health_status text, min_total_score text, band_order text)
    ),
    proposed_settings as (
        select cast(setting_key as text) as setting_key, cast(setting_value as numeric(12, 4)) as setting_value
        from jsonb_to_recordset({{ document }} -> 'health_settings') as r (setting_key text, setting_value text)
    ),
    proposed_version as (
        select cast(rubric_version as text) as rubric_version
        from jsonb_to_recordset({{ document }} -> 'health_rubric_version') as r (rubric_version text)
    )
    {{ csops.health_rubric_definition('proposed_indicators', 'proposed_thresholds', 'proposed_bands',
                                      'proposed_settings', 'proposed_version') }}
{%- endmacro %}


{#-
    CTEs scoring the company-days of `targets` (a CTE or relation with company_id, score_date and rubric_hash)
    under that rubric version, whose definition `versions` holds (rubric_hash, definition). The last CTE is
    named `name`: company_id, score_date, rubric_hash, total_score (rounded to two decimals; null without
    data) and computed_status (before any override). Reads the measures of int_health_measures for the targets
    only; `score_date`, the SQL of the one date all targets have, lets the planner read that date alone.
    Emits a trailing comma: put it among other CTEs.
-#}
{% macro health_scores_under_rubrics(targets, versions, name, score_date) -%}

{{ name }}__versions as (

    select versions.rubric_hash, versions.definition
    from {{ versions }} as versions
    where versions.rubric_hash in (select rubric_hash from {{ targets }})

),

{{ name }}__thresholds as (

    select
        v.rubric_hash,
        t.indicator_key,
        t.score,
        t.measure,
        t.min_value
    from {{ name }}__versions as v
    cross join lateral jsonb_to_recordset(v.definition -> 'thresholds')
        as t (indicator_key text, score integer, measure text, min_value numeric)

),

{{ name }}__indicators as (

    select
        v.rubric_hash,
        i.indicator_key,
        i.weight,
        floors.floor_score
    from {{ name }}__versions as v
    cross join lateral jsonb_to_recordset(v.definition -> 'indicators') as i (indicator_key text, weight numeric)
    inner join (
        select rubric_hash, indicator_key, min(score) as floor_score
        from {{ name }}__thresholds
        group by rubric_hash, indicator_key
    ) as floors
        on v.rubric_hash = floors.rubric_hash
        and i.indicator_key = floors.indicator_key

),

{{ name }}__bands as (

    select
        v.rubric_hash,
        b.health_status,
        b.min_total_score
    from {{ name }}__versions as v
    cross join lateral jsonb_to_recordset(v.definition -> 'status_bands')
        as b (health_status text, min_total_score numeric)

),

{{ name }}__measured as (

    select
        targets.company_id,
        targets.score_date,
        targets.rubric_hash,
        thresholds.indicator_key,
        max(thresholds.score) filter (where measures.measure_value >= thresholds.min_value) as reached_score,
        count(measures.measure_value) as measured_values
    from {{ targets }} as targets
    inner join {{ name }}__thresholds as thresholds
        on targets.rubric_hash = thresholds.rubric_hash
        and thresholds.min_value is not null
    inner join {{ ref('int_health_measures') }} as measures
        on targets.company_id = measures.company_id
        and targets.score_date = measures.score_date
        and thresholds.measure = measures.measure
    where measures.score_date = {{ score_date }}
    group by 1, 2, 3, 4

),

{{ name }}__totals as (

    select
        measured.company_id,
        measured.score_date,
        measured.rubric_hash,
        round(
            sum(coalesce(measured.reached_score, indicators.floor_score) * indicators.weight)
            / nullif(sum(indicators.weight), 0),
            2
        ) as total_score
    from {{ name }}__measured as measured
    inner join {{ name }}__indicators as indicators
        on measured.rubric_hash = indicators.rubric_hash
        and measured.indicator_key = indicators.indicator_key
    where measured.measured_values > 0
    group by 1, 2, 3

),

{{ name }} as (

    select
        targets.company_id,
        targets.score_date,
        targets.rubric_hash,
        totals.total_score,
        (
            select bands.health_status
            from {{ name }}__bands as bands
            where bands.rubric_hash = targets.rubric_hash
                and bands.min_total_score <= totals.total_score
            order by bands.min_total_score desc
            limit 1
        ) as computed_status
    from {{ targets }} as targets
    left join {{ name }}__totals as totals
        on targets.company_id = totals.company_id
        and targets.score_date = totals.score_date
        and targets.rubric_hash = totals.rubric_hash

),

{%- endmacro %}


{#-
    `csops rubric diff`: the latest scored date's companies as marts.fct_health_scores holds them (the rubric
    the warehouse last scored with) beside the same day's values scored under the working copy's rubric
    (var('rubric_proposal'), see health_rubric_proposal()). One row per company: total and effective status
    before and after (an override in force stays in force), with both versions' labels and hashes.
-#}
{% macro health_rubric_diff() -%}
with

proposal as (

    {{ csops.health_rubric_proposal() }}

),

scores as (

    select * from {{ ref('fct_health_scores') }}

),

companies as (

    select * from {{ ref('dim_companies') }}

),

stored as (

    select scores.*
    from scores
    where scores.score_date = (select max(score_date) from scores)

),

targets as (

    select stored.company_id, stored.score_date, proposal.rubric_hash
    from stored
    cross join proposal

),

{{ csops.health_scores_under_rubrics('targets', 'proposal', 'proposed', '(select max(score_date) from scores)') }}

final as (

    select
        stored.company_id,
        companies.company_name,
        stored.score_date,
        stored.rubric_version as stored_rubric_version,
        stored.rubric_hash as stored_rubric_hash,
        (select proposal.rubric_version from proposal) as proposed_rubric_version,
        (select proposal.rubric_hash from proposal) as proposed_rubric_hash,
        stored.total_score as total_score_before,
        cast(proposed.total_score as numeric(4, 2)) as total_score_after,
        stored.health_status as health_status_before,
        coalesce(stored.override_status, proposed.computed_status) as health_status_after,
        stored.override_status
    from stored
    inner join proposed
        on stored.company_id = proposed.company_id
        and stored.score_date = proposed.score_date
    left join companies
        on stored.company_id = companies.company_id

)

select * from final
order by company_id
{%- endmacro %}
