"""/customer?company=<company id> — Customer 360 as of the run date: identity across Salesforce, Nexpro and
board with any data-quality issue; tier, touch model, plan and contract; MRR history with its movements;
health history with the category sub-scores and reasons; 90 days of usage; signals; key persons; NPS;
outcome goals; open tasks and opportunities; the playbook firings the company received."""

from datetime import timedelta

import plotly.graph_objects as go
import streamlit as st

from csops.dashboards.frame import STATUS_COLOURS, header, load, load_ops, missing, number, percent, yen
from csops.dashboards.labels import localized, t

companies = load("dash_customer_360", order_by="company_name", columns=("company_id", "company_name", "as_of_date"))
as_of = header(t("customer"), companies, "dash_customer_360")

ids = companies["company_id"].tolist()
names = dict(zip(companies["company_id"], companies["company_name"], strict=True))
wanted = st.query_params.get("company")
if wanted and wanted not in names:
    st.warning(t("unknown_company", company=wanted))
chosen = st.selectbox(t("choose_company"), ids, index=ids.index(wanted) if wanted in names else None,
                      format_func=lambda key: f"{names[key] or '—'} ({key})")
if chosen is None:
    st.stop()
if st.query_params.get("company") != chosen:
    st.query_params["company"] = chosen
company = load("dash_customer_360", "company_id = %s", (chosen,)).iloc[0]


def text(value) -> str:
    return "—" if missing(value) or value == "" else str(value)


st.subheader(f"{text(company['company_name'])}  ·  {text(company['health_status'])}")
columns = st.columns(4)
columns[0].metric(t("mrr"), yen(company["mrr"]), None if missing(company["mrr_change_12m"])
                  else f"{yen(company['mrr_change_12m'])} / 12m")
columns[1].metric(t("cmrr"), yen(company["cmrr"]))
columns[2].metric(t("total_score"), number(company["total_score"], 2))
columns[3].metric(t("renewal_date"), text(company["renewal_date"]),
                  None if missing(company["days_to_renewal"]) else f"{number(company['days_to_renewal'])}d",
                  delta_color="off")

left, right = st.columns(2)
with left:
    st.markdown(f"**{t('identity')}**")
    st.markdown(f"- Salesforce: `{text(company['account_id'])}`\n- Nexpro: `{text(company['tenant_id'])}`\n"
                f"- board: `{text(company['board_client_id'])}`\n- match: {text(company['match_status'])}")
    issues = company["data_quality_issues"]
    st.markdown(f"**{t('data_quality')}**: " + (t("none") if not issues
                                                  else f"{issues} ({text(company['data_quality_issue_types'])})"))
with right:
    st.markdown(f"- {t('csm_name')}: {text(company['csm_name'])}\n- {t('tier')}: {text(company['tier'])}\n"
                f"- {t('touch_model')}: {text(company['touch_model'])}\n"
                f"- {t('plan')}: {text(company['current_plan_name'])} ({text(company['current_plan_code'])})\n"
                f"- {t('contract_start')}: {text(company['contract_start_date'])} · "
                f"{t('renewal_date')}: {text(company['renewal_date'])}")

st.subheader(t("mrr_history"))
mrr = load("fct_mrr_company_monthly", "company_id = %s", (chosen,), "month_start", require_rows=False)
figure = go.Figure(go.Bar(x=mrr["month_start"], y=mrr["closing_mrr"].astype(float), name=t("mrr"),
                          text=mrr["movement"], textposition="outside"))
figure.update_layout(height=320, margin={"t": 20, "b": 20}, yaxis={"tickformat": ",.0f"})
st.plotly_chart(figure, width="stretch")
with st.expander(t("movement")):
    st.dataframe(mrr[["month_start", "opening_mrr", "new_mrr", "reactivation_mrr", "expansion_mrr",
                      "contraction_mrr", "churn_mrr", "closing_mrr", "movement"]], hide_index=True, width="stretch")

st.subheader(t("health_history"))
health = load("fct_health_scores", "company_id = %s", (chosen,), "score_date", require_rows=False)
figure = go.Figure()
for column in ("total_score", "usage_score", "outcome_score", "relationship_score", "contract_score"):
    figure.add_trace(go.Scatter(x=health["score_date"], y=health[column].astype(float), name=t(column),
                                mode="lines", line={"width": 3 if column == "total_score" else 1.5}))
for status, colour in STATUS_COLOURS.items():
    days = health[health["health_status"] == status]
    figure.add_trace(go.Scatter(x=days["score_date"], y=[0.9] * len(days), mode="markers", name=t(status.lower()),
                                marker={"color": colour, "symbol": "square", "size": 6}))
figure.update_layout(height=320, margin={"t": 20, "b": 20}, yaxis={"range": [0.8, 3.1]})
st.plotly_chart(figure, width="stretch")
st.markdown(f"**{t('top_reasons')}**: {text(localized(company, 'top_reasons'))}")
if company["override_reason"]:
    st.markdown(f"override: {text(company['override_reason'])}")

st.subheader(t("usage_90d"))
if missing(company["tenant_id"]):
    st.info(t("no_usage"))
else:
    usage = load("fct_tenant_daily_usage", "tenant_id = %s and usage_date > %s", (company["tenant_id"],
                 as_of - timedelta(days=90)), "usage_date", require_rows=False)
    figure = go.Figure([
        go.Bar(x=usage["usage_date"], y=usage["attendees"].astype(float), name=t("attendees")),
        go.Scatter(x=usage["usage_date"], y=usage["webinars_held"].astype(float), name=t("webinars_held"),
                   yaxis="y2", mode="lines+markers"),
    ])
    figure.update_layout(height=300, margin={"t": 20, "b": 20},
                         yaxis2={"overlaying": "y", "side": "right", "rangemode": "tozero"})
    st.plotly_chart(figure, width="stretch")
    st.caption(f"login days 30d/90d: {number(company['login_days_30d'])}/{number(company['login_days_90d'])} · "
               f"webinars 30d: {number(company['webinars_held_30d'])} · "
               f"attendees 30d: {number(company['attendees_30d'])}")

left, right = st.columns(2)
with left:
    st.markdown(f"**{t('signals')}**: {text(company['active_signals_text'])}")
    st.markdown(f"**{t('key_persons')}** ({company['key_persons']}): {text(company['key_person_names'])}")
    st.markdown(f"**{t('nps')}**: {text(company['last_nps_score'])} ({text(company['last_nps_category'])}, "
                f"{text(company['last_nps_date'])}) {text(company['last_nps_comment'])}")
    st.markdown(f"**{t('outcome_goals')}**: {number(company['active_goals'])} {t('active_goals')}, "
                f"{t('achievement')} {percent(company['goal_achievement_rate'])}")
with right:
    st.markdown(f"**{t('open_tasks')}** ({company['open_tasks']}, {t('overdue_tasks')} {company['overdue_tasks']}): "
                f"{text(company['open_tasks_text'])}")
    st.markdown(f"**{t('opportunities')}** ({company['open_opportunities']}, "
                f"{yen(company['open_opportunity_amount_jpy'])}): {text(company['open_opportunities_text'])}")
    st.markdown(f"{t('last_touch')}: {text(company['last_touchpoint_date'])} · "
                f"{t('last_qbr')}: {text(company['last_qbr_date'])}")

st.subheader(t("playbooks"))
firings = load_ops("playbook_firings", "company_id = %s", (chosen,), "run_date desc, at desc")
if firings is None or firings.empty:
    st.info(t("no_playbooks"))
else:
    st.dataframe({t("date"): firings["run_date"].tolist(), t("playbook"): firings["playbook_key"].tolist(),
                  t("action"): firings["action"].tolist(), t("outcome"): firings["outcome"].tolist(),
                  t("detail"): firings["detail"].tolist()}, hide_index=True, width="stretch")
