"""What every dashboard page shares: reading its mart or saying which model to build, the "as of" line,
and the number formats. Imported by the Streamlit pages in dashboards/ only."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import streamlit as st

from csops import settings
from csops.dashboards.labels import t
from csops.dashboards.marts import MartMissing, WarehouseUnavailable, last_successful_build, read_mart, read_table

STATUS_COLOURS = {"Green": "#2e9e5b", "Yellow": "#e0b400", "Red": "#d1343b"}
STATUS_ORDER = ("Red", "Yellow", "Green")
NO_STATUS = "no_status"  # a company scored without a status: no indicator had data


def stop_with(message: str, *, error: bool = False) -> None:
    (st.error if error else st.warning)(message)
    st.stop()


def load(model: str, where: str = "", params: tuple = (), order_by: str = "", *, require_rows: bool = True,
         columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The mart's rows (`columns` only, when given); when it is not built (or empty), or the warehouse is down,
    the page says so and stops."""
    try:
        return read_mart(model, where, params, order_by, require_rows=require_rows, columns=columns)
    except MartMissing as missing:
        stop_with(t(f"mart_{missing.why}", model=missing.model))
    except WarehouseUnavailable as error:
        stop_with(t("warehouse_unavailable", error=error), error=True)


def load_ops(table: str, where: str = "", params: tuple = (), order_by: str = "") -> pd.DataFrame | None:
    """Rows of an ops table, or None when the warehouse has none (the activation never ran there)."""
    return read_table("ops", table, where, params, order_by)


def header(title: str, frame: pd.DataFrame, model: str) -> date:
    """The page's title, and the date its figures are as of with the model's last successful build."""
    st.title(title)
    as_of = frame["as_of_date"].iloc[0]
    last = last_successful_build(model)
    if last is None:
        ran = t("no_run_recorded")
    else:
        ran = pd.Timestamp(last.recorded_at).tz_convert(settings.BUSINESS_TIMEZONE).strftime("%Y-%m-%d %H:%M JST")
        if last.airflow_run_id:
            ran += f" ({last.airflow_run_id})"
    st.caption(f"{t('as_of')}: **{as_of}** · {t('last_run')}: {ran} · `marts.{model}`")
    return as_of


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def yen(value) -> str:
    return "—" if missing(value) else f"¥{float(value):,.0f}"


def percent(value) -> str:
    return "—" if missing(value) else f"{float(value):.1%}"


def number(value, digits: int = 0) -> str:
    return "—" if missing(value) else f"{float(value):,.{digits}f}"


def signed(value, digits: int = 2) -> str:
    return "—" if missing(value) else f"{float(value):+.{digits}f}"
