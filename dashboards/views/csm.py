"""/csm?csm=<Salesforce user id or name> — one CSM's customers as of the run date: status and score with
their 7- and 30-day change, active signals, next renewals, open and overdue tasks, last touch and last QBR,
MRR (dash_csm_individual). Choosing another CSM updates the URL, so it can be shared."""

import plotly.graph_objects as go
import streamlit as st

from csops.dashboards.frame import NO_STATUS, STATUS_COLOURS, STATUS_ORDER, header, load, number, signed, yen
from csops.dashboards.labels import t

owners = load("dash_csm_individual", columns=("csm_user_id", "csm_name", "as_of_date"))
header(t("csm"), owners, "dash_csm_individual")

csms = (owners[owners["csm_user_id"].notna()][["csm_user_id", "csm_name"]]
        .drop_duplicates().sort_values(["csm_name", "csm_user_id"]))
ids = csms["csm_user_id"].tolist()
names = dict(zip(csms["csm_user_id"], csms["csm_name"], strict=True))
wanted = st.query_params.get("csm")
chosen = None
if wanted:
    chosen = wanted if wanted in names else next((key for key, name in names.items() if name == wanted), None)
    if chosen is None:
        st.warning(t("unknown_csm", csm=wanted))
chosen = st.selectbox(t("choose_csm"), ids, index=ids.index(chosen) if chosen else None,
                      format_func=lambda key: f"{names[key]} ({key})")
if chosen is None:
    st.stop()
if st.query_params.get("csm") != chosen:
    st.query_params["csm"] = chosen

mine = load("dash_csm_individual", "csm_user_id = %s", (chosen,), "company_name")
status_of = mine["health_status"].fillna(NO_STATUS)
choices = [*STATUS_ORDER, *([NO_STATUS] if (status_of == NO_STATUS).any() else [])]
statuses = st.multiselect(t("status_filter"), choices, default=choices,
                          format_func=lambda status: t(status.lower()))
shown = mine[status_of.isin(statuses)]
rank = {status: index for index, status in enumerate(STATUS_ORDER)}
shown = shown.assign(status_rank=shown["health_status"].map(rank)).sort_values(["status_rank", "total_score"])

st.subheader(f"{names[chosen]} — {t('my_customers')}")
columns = st.columns(5)
columns[0].metric(t("companies"), number(len(mine)))
columns[1].metric(t("mrr"), yen(mine["mrr"].sum()))
columns[2].metric(t("red"), number((mine["health_status"] == "Red").sum()))
columns[3].metric(t("open_tasks"), number(mine["open_tasks"].sum()))
columns[4].metric(t("overdue_tasks"), number(mine["overdue_tasks"].sum()))

figure = go.Figure(go.Bar(
    x=shown["company_name"], y=shown["total_score"].astype(float),
    marker_color=[STATUS_COLOURS.get(status, "#999999") for status in shown["health_status"]],
    customdata=shown["score_change_30d"], hovertemplate="%{x}: %{y} (30d %{customdata:+})<extra></extra>"))
figure.update_layout(title=t("score"), height=300, margin={"t": 40, "b": 20}, yaxis={"range": [0, 3]})
st.plotly_chart(figure, width="stretch")

st.dataframe(
    {
        t("company"): shown["company_name"].tolist(),
        t("status"): [t(status.lower()) for status in status_of[shown.index]],
        t("score"): [number(value, 2) for value in shown["total_score"]],
        t("change_7d"): [signed(value) for value in shown["score_change_7d"]],
        t("change_30d"): [signed(value) for value in shown["score_change_30d"]],
        t("signals"): shown["active_signals_text"].tolist(),
        t("renewal_date"): shown["next_renewal_date"].tolist(),
        t("open_tasks"): shown["open_tasks"].tolist(),
        t("overdue_tasks"): shown["overdue_tasks"].tolist(),
        t("last_touch"): shown["last_touchpoint_date"].tolist(),
        t("last_qbr"): shown["last_qbr_date"].tolist(),
        t("mrr"): [yen(value) for value in shown["mrr"]],
        "customer": [f"/customer?company={company}" for company in shown["company_id"]],
    },
    hide_index=True, width="stretch",
    column_config={"customer": st.column_config.LinkColumn(t("customer"), display_text=t("customer"))})

st.subheader(t("next_renewals"))
renewals = mine[mine["days_to_renewal"].ge(0).fillna(False)].sort_values("days_to_renewal").head(5)
st.dataframe(
    {
        t("company"): renewals["company_name"].tolist(),
        t("renewal_date"): renewals["next_renewal_date"].tolist(),
        t("days_to_renewal"): [number(days) for days in renewals["days_to_renewal"]],
        t("status"): renewals["health_status"].tolist(),
        t("mrr"): [yen(value) for value in renewals["mrr"]],
    },
    hide_index=True, width="stretch")

st.subheader(t("tasks"))
with_tasks = mine[mine["open_tasks"] > 0].sort_values("overdue_tasks", ascending=False)
st.dataframe(
    {
        t("company"): with_tasks["company_name"].tolist(),
        t("open_tasks"): with_tasks["open_tasks"].tolist(),
        t("overdue_tasks"): with_tasks["overdue_tasks"].tolist(),
        t("tasks"): with_tasks["open_tasks_text"].tolist(),
    },
    hide_index=True, width="stretch")
