"""The landing page: which dashboard is whose."""

import streamlit as st

from csops.dashboards.labels import t

st.title(t("app_title"))
st.write(t("home_intro"))
for key, path in (("executive", "executive"), ("manager", "manager"), ("csm", "csm"), ("customer", "customer")):
    st.page_link(f"views/{path}.py", label=f"**{t(key)}** — {t(key + '_for')}")
