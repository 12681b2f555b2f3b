{#
    One row: the rubric the seeds hold now (seeds/health/), as a rubric version: its label (seed
    health_rubric_version), its definition (the seeds' rows as one jsonb document) and its hash (md5 of the
    definition). See macros/health_rubric.sql for what the version covers.
#}

with

indicators as (

    select * from {{ ref('health_indicators') }}

),

thresholds as (

    select * from {{ ref('health_thresholds') }}

),

status_bands as (

    select * from {{ ref('health_status_bands') }}

),

settings as (

    select * from {{ ref('health_settings') }}

),

rubric_version as (

    select * from {{ ref('health_rubric_version') }}

),

final as (

    {{ health_rubric_definition('indicators', 'thresholds', 'status_bands', 'settings', 'rubric_version') }}

)

select * from final
