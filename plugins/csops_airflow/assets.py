"""The Airflow Assets the platform publishes (one per mart, updated when its dbt model builds), and the date an
Asset-triggered activation acts on.

Named for what they are, not where they live: a mart's URI carries no host or port, so a DAG scheduled
on it (activation, BI refreshes) keeps working whichever warehouse the `cs_warehouse` connection names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from airflow.sdk import Asset

from csops import settings

MARTS_GROUP = "marts"


def mart_asset(model: str) -> Asset:
    return Asset(name=f"csops.marts.{model}", uri=f"csops://warehouse/marts/{model}", group=MARTS_GROUP)


@dataclass(frozen=True)
class ActivationDate:
    """The business date an activation acts on, the cs_daily run that built it (if known), and whether that
    run was a backfill."""

    run_date: date
    daily_run_id: str | None = None
    backfill: bool = False


class MismatchedAssetEvents(RuntimeError):
    """The marts an activation waits for were last built by cs_daily runs of different dates."""


def activation_date(requested: str | None, events: Iterable, logical_date, run_after) -> ActivationDate:
    """The date an activation run acts on.

    A date asked for (the `run_date` param) first. Else the date of the cs_daily run whose Asset events
    triggered this run (`run_date_for` of its logical date): the latest event of each Asset, all of which must
    come from the same date (else MismatchedAssetEvents names them). Else the rule applied to this run's own
    logical date (or the moment it was triggered)."""
    if requested:
        return ActivationDate(date.fromisoformat(requested))
    latest = {}
    for event in sorted(events, key=lambda event: event.timestamp):
        if event.source_dag_run is not None:
            latest[event.asset.uri] = event
    if latest:
        dates = {uri: date.fromisoformat(settings.run_date_for(event.source_dag_run.logical_date
                                                                 or event.source_dag_run.run_after))
                 for uri, event in latest.items()}
        if len(set(dates.values())) > 1:
            raise MismatchedAssetEvents(
                "the marts this activation waits for were last built for different dates: "
                + ", ".join(f"{uri} for {day} (cs_daily run {latest[uri].source_run_id})"
                            for uri, day in sorted(dates.items()))
                + ". Nothing fires on a mix of days: re-run cs_daily for the latest date, or trigger cs_activation "
                  "with the run_date param")
        newest = max(latest.values(), key=lambda event: event.timestamp)
        backfill = any(str(event.source_dag_run.run_type) == "backfill" for event in latest.values())
        return ActivationDate(next(iter(dates.values())), newest.source_run_id, backfill)
    return ActivationDate(date.fromisoformat(settings.run_date_for(logical_date or run_after)))
