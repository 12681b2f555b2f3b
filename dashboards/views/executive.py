"""/executive — the CS leader's month: NRR (monthly and trailing twelve months) against the programme year's
target, gross churn and expansion against theirs, MRR and CMRR, CS-originated and paid-services revenue, the
Green/Yellow/Red mix month by month against its targets, and the KPI tree."""

import plotly.graph_objects as go
import streamlit as st

from csops.dashboards.frame import STATUS_COLOURS, header, load, missing, percent, yen
from csops.dashboards.labels import kpi_name, t

months = load("dash_executive_monthly", order_by="month_start")
kpis = load("dash_executive_kpis", order_by="kpi_branch, kpi_key")
header(t("executive"), months, "dash_executive_monthly")

closed = months[months["is_closed_month"]]
last = closed[closed["is_last_closed_month"]].iloc[0]
st.subheader(f"{t('last_closed_month')}: {last['month_start']:%Y-%m}")


def against(actual, target) -> str | None:
    """The gap to the target as the metric's delta, e.g. '+2.1pt (目標 105.0%)'."""
    if missing(actual) or missing(target):
        return None
    return f"{(float(actual) - float(target)) * 100:+.1f}pt ({t('target')} {percent(target)})"


columns = st.columns(4)
# The programme's NRR target is for the trailing twelve months; the month's NRR is shown beside it, not against it.
columns[0].metric(t("nrr_month"), percent(last["nrr"]))
columns[1].metric(t("nrr_t12m"), percent(last["nrr_t12m"]), against(last["nrr_t12m"], last["nrr_t12m_target"]))
columns[2].metric(t("gross_churn_t12m"), percent(last["gross_churn_rate_t12m"]),
                  against(last["gross_churn_rate_t12m"], last["gross_churn_rate_t12m_target"]), delta_color="inverse")
columns[3].metric(t("expansion_t12m"), percent(last["expansion_rate_t12m"]),
                  against(last["expansion_rate_t12m"], last["expansion_rate_t12m_target"]))
columns = st.columns(4)
columns[0].metric(t("mrr"), yen(last["mrr"]))
columns[1].metric(t("cmrr"), yen(last["cmrr"]))
columns[2].metric(t("cs_originated"), yen(last["cs_originated_mrr"]))
columns[3].metric(t("paid_services"), yen(last["paid_services_revenue"]))


def line_chart(title: str, series: list[tuple[str, str, str, bool]], frame) -> None:
    """Lines of `frame`'s columns: (column, name, colour, is a target); targets are dashed, without markers."""
    figure = go.Figure()
    for column, name, colour, is_target in series:
        figure.add_trace(go.Scatter(
            x=frame["month_start"], y=frame[column].astype(float), name=name,
            mode="lines" if is_target else "lines+markers",
            line={"color": colour, "dash": "dash" if is_target else "solid", "width": 2 if is_target else 1.5}))
    figure.update_layout(title=title, height=340, margin={"t": 40, "b": 20}, yaxis={"tickformat": ".0%"},
                         legend={"orientation": "h", "y": -0.15})
    st.plotly_chart(figure, width="stretch")


left, right = st.columns(2)
with left:
    line_chart(t("retention_trend"), [("nrr", t("nrr_month"), "#9db7d5", False),
                                      ("nrr_t12m", t("nrr_t12m"), "#1f5fa8", False),
                                      ("nrr_t12m_target", f"{t('nrr_t12m')} {t('target')}", "#1f5fa8", True)],
               closed)
with right:
    line_chart(t("churn_expansion_trend"),
               [("gross_churn_rate_t12m", t("gross_churn_t12m"), "#d1343b", False),
                ("gross_churn_rate_t12m_target", f"{t('gross_churn_t12m')} {t('target')}", "#d1343b", True),
                ("expansion_rate_t12m", t("expansion_t12m"), "#2e9e5b", False),
                ("expansion_rate_t12m_target", f"{t('expansion_t12m')} {t('target')}", "#2e9e5b", True)], closed)

left, right = st.columns(2)
with left:
    figure = go.Figure(go.Bar(x=closed["month_start"], y=closed["mrr"].astype(float), name=t("mrr")))
    figure.update_layout(title=t("mrr_trend"), height=340, margin={"t": 40, "b": 20}, yaxis={"tickformat": ",.0f"})
    st.plotly_chart(figure, width="stretch")
with right:
    figure = go.Figure([
        go.Bar(x=months["month_start"], y=months["cs_originated_mrr"].astype(float), name=t("cs_originated")),
        go.Bar(x=months["month_start"], y=months["paid_services_revenue"].astype(float), name=t("paid_services")),
    ])
    figure.update_layout(title=t("revenue_trend"), height=340, margin={"t": 40, "b": 20}, barmode="group",
                         yaxis={"tickformat": ",.0f"}, legend={"orientation": "h", "y": -0.15})
    st.plotly_chart(figure, width="stretch")

scored = months[months["health_scored_on"].notna()]
figure = go.Figure([
    go.Bar(x=scored["month_start"], y=scored[f"{status.lower()}_share"].astype(float), name=t(status.lower()),
           marker_color=STATUS_COLOURS[status])
    for status in ("Green", "Yellow", "Red")
])
figure.add_trace(go.Scatter(x=scored["month_start"], y=scored["green_share_target"].astype(float),
                            name=t("green_target"), mode="lines", line={"dash": "dash", "color": "#1b5e37"}))
figure.add_trace(go.Scatter(x=scored["month_start"], y=scored["red_share_target"].astype(float),
                            name=t("red_target"), mode="lines", line={"dash": "dot", "color": "#8b1a1f"}))
figure.update_layout(title=t("health_mix_trend"), barmode="stack", height=360, margin={"t": 40, "b": 20},
                     yaxis={"tickformat": ".0%"}, legend={"orientation": "h", "y": -0.15})
st.plotly_chart(figure, width="stretch")

st.subheader(f"{t('kpi_tree')} ({kpis['month_start'].iloc[0]:%Y-%m})")


def kpi_value(value, unit: str) -> str:
    if missing(value):
        return "—"
    return {"ratio": percent, "jpy": yen}.get(unit, lambda number: f"{float(number):,.1f}")(value)


def verdict(row) -> str:
    if row["actual_missing_reason"] is not None:
        return "—"
    if row["is_on_target"] is None:
        return t("no_target")
    return ("✅ " + t("yes")) if row["is_on_target"] else ("❌ " + t("no"))


branches = ["nrr", "defence", "offence", "data"]
kpis = kpis.assign(branch_rank=kpis["kpi_branch"].map({branch: rank for rank, branch in enumerate(branches)}))
kpis = kpis.sort_values(["branch_rank", "kpi_key"])
st.dataframe(
    {
        t("branch"): [t(f"branch_{branch}") for branch in kpis["kpi_branch"]],
        t("kpi"): [kpi_name(key, name) for key, name in zip(kpis["kpi_key"], kpis["kpi_name"], strict=True)],
        t("actual"): [kpi_value(row["actual"], row["unit"]) for _, row in kpis.iterrows()],
        t("target"): [kpi_value(row["target"], row["unit"]) for _, row in kpis.iterrows()],
        t("on_target"): [verdict(row) for _, row in kpis.iterrows()],
        t("reason"): [t(f"reason_{reason}") if reason else "" for reason in kpis["actual_missing_reason"]],
    },
    hide_index=True, width="stretch")
