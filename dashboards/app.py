"""The CS dashboards, one URL per reader: `streamlit run dashboards/app.py` (or `make dashboards`).

    /executive                    the CS leader: NRR, churn, expansion, MRR and CMRR, health mix, KPI tree
    /manager                      the manager: each CSM's portfolio, and the Red list
    /csm?csm=<user id or name>    a CSM's customers
    /customer?company=<id>        Customer 360

Every figure is selected from the warehouse's marts (dbt computes them); see docs/dashboards.md.
"""

from pathlib import Path

import streamlit as st

from csops.dashboards.labels import t

HERE = Path(__file__).parent

st.set_page_config(page_title=t("app_title"), layout="wide")
pages = [
    st.Page(HERE / "views" / "home.py", title=t("home"), url_path="home", default=True),
    st.Page(HERE / "views" / "executive.py", title=t("executive"), url_path="executive"),
    st.Page(HERE / "views" / "manager.py", title=t("manager"), url_path="manager"),
    st.Page(HERE / "views" / "csm.py", title=t("csm"), url_path="csm"),
    st.Page(HERE / "views" / "customer.py", title=t("customer"), url_path="customer"),
]
st.navigation(pages).run()
