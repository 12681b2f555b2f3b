"""/manager — the CS manager's team as of the run date: per CSM, customers, MRR, health distribution, status
changes this week (worse / better), the QBR rate of Tier 1 and 2, expansion proposals this month against the
target, overdue tasks; then the Red list (dash_csm_individual's Red companies, longest in Red first)."""

import plotly.graph_objects as go
import streamlit as st

from csops.dashboards.frame import STATUS_COLOURS, header, load, number, percent, yen
from csops.dashboards.labels import localized, t

team = load("dash_cs_manager", order_by="is_team_total desc, csm_user_id is null, csm_name")
header(t("manager"), team, "dash_cs_manager")

total = team[team["is_team_total"]].iloc[0]
columns = st.columns(5)
columns[0].metric(t("companies"), number(total["companies"]))
columns[1].metric(t("mrr_under_management"), yen(total["mrr_under_management"]))
columns[2].metric(t("red"), number(total["red_companies"]))
columns[3].metric(t("qbr_rate"), percent(total["qbr_rate_tier_1_2"]),
                  f"{t('target')} {percent(total['qbr_rate_tier_1_2_target'])}", delta_color="off")
columns[4].metric(t("overdue_tasks"), number(total["overdue_tasks"]))


def csm_label(row) -> str:
    if row["is_team_total"]:
        return t("team")
    return t("no_csm") if row["csm_user_id"] is None else row["csm_name"]


csms = team[~team["is_team_total"]]
figure = go.Figure([
    go.Bar(y=[csm_label(row) for _, row in csms.iterrows()], x=csms[f"{status.lower()}_companies"], orientation="h",
           name=t(status.lower()), marker_color=STATUS_COLOURS[status])
    for status in ("Green", "Yellow", "Red")
])
figure.update_layout(title=t("health_by_csm"), barmode="stack", height=80 + 28 * len(csms), margin={"t": 40, "b": 20},
                     yaxis={"autorange": "reversed"})
st.plotly_chart(figure, width="stretch")

st.subheader(t("per_csm"))
st.dataframe(
    {
        t("csm_name"): [csm_label(row) for _, row in team.iterrows()],
        t("companies"): team["companies"].tolist(),
        t("mrr_under_management"): [yen(value) for value in team["mrr_under_management"]],
        t("green"): team["green_companies"].tolist(),
        t("yellow"): team["yellow_companies"].tolist(),
        t("red"): team["red_companies"].tolist(),
        t("worsened_7d"): team["status_worsened_7d"].tolist(),
        t("improved_7d"): team["status_improved_7d"].tolist(),
        t("qbr_rate"): [f"{percent(rate)} / {percent(target)}"
                        for rate, target in zip(team["qbr_rate_tier_1_2"], team["qbr_rate_tier_1_2_target"],
                                                strict=True)],
        t("proposals_mtd"): [f"{done} / {number(target)}"
                             for done, target in zip(team["expansion_proposals_mtd"],
                                                     team["expansion_proposals_target"], strict=True)],
        t("open_tasks"): team["open_tasks"].tolist(),
        t("overdue_tasks"): team["overdue_tasks"].tolist(),
        "csm": [None if row["csm_user_id"] is None else f"/csm?csm={row['csm_user_id']}" for _, row in team.iterrows()],
    },
    hide_index=True, width="stretch",
    column_config={"csm": st.column_config.LinkColumn(t("csm"), display_text=t("csm"))})

st.subheader(t("red_list"))
red = load("dash_csm_individual", "health_status = 'Red'", order_by="days_in_status desc, mrr desc nulls last",
           require_rows=False)
if red.empty:
    st.info(t("no_red"))
else:
    st.dataframe(
        {
            t("company"): red["company_name"].tolist(),
            t("csm_name"): [name or t("no_csm") for name in red["csm_name"]],
            t("days_in_red"): red["days_in_status"].tolist(),
            t("top_reasons"): localized(red, "top_reasons").tolist(),
            t("mrr"): [yen(value) for value in red["mrr"]],
            t("renewal_date"): red["next_renewal_date"].tolist(),
            t("open_tasks"): red["open_tasks"].tolist(),
            "customer": [f"/customer?company={company}" for company in red["company_id"]],
        },
        hide_index=True, width="stretch",
        column_config={"customer": st.column_config.LinkColumn(t("customer"), display_text=t("customer"))})
