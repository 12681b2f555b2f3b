"""The Airflow Assets the platform publishes: one per mart, updated when its dbt model builds.

Named for what they are, not where they live: a mart's URI carries no host or port, so a DAG scheduled
on it (activation, BI refreshes) keeps working whichever warehouse the `cs_warehouse` connection names.
"""

from __future__ import annotations

from airflow.sdk import Asset

MARTS_GROUP = "marts"


def mart_asset(model: str) -> Asset:
    return Asset(name=f"csops.marts.{model}", uri=f"csops://warehouse/marts/{model}", group=MARTS_GROUP)
