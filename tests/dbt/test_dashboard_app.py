"""The Streamlit dashboards (dashboards/app.py) on the built test world, page by page with Streamlit's AppTest:
each page's figures are asked of the marts again here and must be what the page shows (the last closed
month's NRR, the KPI tree, the Red list with its days in Red, a CSM's customers and the status filter, a
customer's MRR history as charted); a warehouse without the marts gets the message naming the model to build;
English labels by setting."""

from __future__ import annotations

import base64
import json
from datetime import date

import numpy
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from csops import settings
from csops.dashboards.labels import KPI_NAMES_JA

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

APP = str(settings.REPO_ROOT / "dashboards" / "app.py")


def query(warehouse: str, sql: str, params=()) -> list[dict]:
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def warehouse(built_warehouse) -> str:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    return url


@pytest.fixture
def open_page(monkeypatch, warehouse):
    """Run one page of the app against a warehouse (the built one unless given), with query parameters."""
    def run(page: str, *, url: str | None = None, language: str = "ja", **query_params) -> AppTest:
        monkeypatch.delenv("AIRFLOW_CONN_CS_WAREHOUSE", raising=False)
        monkeypatch.setenv("CS_WAREHOUSE_URL", url or warehouse)
        monkeypatch.setenv("CS_DASHBOARDS_LANGUAGE", language)
        app = AppTest.from_file(APP, default_timeout=60).run()  # the first run registers the pages
        for key, value in query_params.items():
            app.query_params[key] = value
        app.switch_page(f"views/{page}.py").run()
        assert not app.exception, [exception.value for exception in app.exception]
        return app
    return run


def metric(app: AppTest, label: str) -> str:
    [found] = [element for element in app.metric if element.label == label]
    return found.value


def table(app: AppTest, index: int):
    return app.dataframe[index].value


def charts(app: AppTest) -> list[dict]:
    """The page's plotly figures, as the browser receives them."""
    return [json.loads(element.proto.spec) for element in app.get("plotly_chart")]


def values(array) -> list:
    """A plotly array as a list: plotly sends numbers as a typed array ({'dtype': 'f8', 'bdata': base64})."""
    if isinstance(array, dict):
        return numpy.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_executive_shows_the_last_closed_months_figures_and_the_kpi_tree(open_page, warehouse):
    [last] = query(warehouse, "select * from marts.fct_revenue_monthly order by month_start desc limit 1")
    [cmrr] = query(warehouse, "select sum(cmrr) as cmrr from marts.fct_cmrr")
    app = open_page("executive")

    assert metric(app, "NRR (月次)") == f"{last['nrr']:.1%}"
    assert metric(app, "NRR (直近12か月)") == ("—" if last["nrr_t12m"] is None else f"{last['nrr_t12m']:.1%}")
    assert metric(app, "MRR") == f"¥{last['closing_mrr']:,.0f}"
    assert metric(app, "CMRR") == f"¥{cmrr['cmrr']:,.0f}"
    assert any(f"{last['month_start']:%Y-%m}" in header.value for header in app.subheader)
    assert any("基準日" in caption.value and str(date(2026, 11, 20)) in caption.value for caption in app.caption)
    assert len(charts(app)) == 5

    # the KPI tree: every KPI of the seed with the last closed month's actual (or a reason) and target
    kpis = query(warehouse, "select * from marts.fct_kpi_monthly where month_start = %s", (last["month_start"],))
    tree = table(app, 0)
    seed_kpis = {row["kpi_key"] for row in query(warehouse, "select distinct kpi_key from reference.kpi_targets")}
    assert set(tree["KPI"]) == {KPI_NAMES_JA[key] for key in seed_kpis}, "every KPI, named in Japanese"
    shown = dict(zip(tree["KPI"], tree["実績"], strict=True))
    for kpi in kpis:
        if kpi["actual"] is not None and kpi["unit"] == "ratio":
            assert shown[KPI_NAMES_JA[kpi["kpi_key"]]] == f"{kpi['actual']:.1%}", kpi["kpi_key"]
    without_actual = {KPI_NAMES_JA[key] for key in seed_kpis} - \
        {KPI_NAMES_JA[kpi["kpi_key"]] for kpi in kpis if kpi["actual"] is not None}
    assert without_actual, "the test world has KPIs without an actual (paid services needs twelve months)"
    reasons = dict(zip(tree["KPI"], tree["実績なしの理由"], strict=True))
    assert all(reasons[name] for name in without_actual), reasons


def test_manager_shows_each_csm_and_the_red_list(open_page, warehouse):
    run_date = date(2026, 11, 20)
    red = query(warehouse, """
        select companies.company_name, scores.days_in_status
        from marts.fct_health_scores as scores
        inner join marts.dim_companies as companies using (company_id)
        where scores.score_date = %s and scores.health_status = 'Red'
        order by scores.days_in_status desc, companies.company_name""", (run_date,))
    assert red, "the test world has Red customers"
    scored = query(warehouse, "select count(*) as n from marts.fct_health_scores where score_date = %s", (run_date,))
    app = open_page("manager")

    per_csm, red_list = table(app, 0), table(app, 1)
    assert per_csm["CSM"].iloc[0] == "チーム全体"
    assert per_csm["顧客数"].iloc[0] == scored[0]["n"]
    assert sorted(zip(red_list["企業"], red_list["Red日数"], strict=True)) == \
        sorted((row["company_name"], row["days_in_status"]) for row in red)
    assert list(red_list["Red日数"]) == sorted(red_list["Red日数"], reverse=True), "longest in Red first"
    assert len(charts(app)) == 1


def test_csm_page_shows_one_csms_customers_and_filters_them_by_status(open_page, warehouse):
    run_date = date(2026, 11, 20)
    [csm] = query(warehouse, """
        select csm_user_id, count(*) as companies from marts.fct_health_scores
        where score_date = %s and csm_user_id is not null
        group by csm_user_id having count(distinct health_status) > 1
        order by count(*) desc, csm_user_id limit 1""", (run_date,))
    customers = query(warehouse, """
        select companies.company_name, scores.health_status
        from marts.fct_health_scores as scores inner join marts.dim_companies as companies using (company_id)
        where scores.score_date = %s and scores.csm_user_id = %s""", (run_date, csm["csm_user_id"]))
    app = open_page("csm", csm=csm["csm_user_id"])

    assert sorted(table(app, 0)["企業"]) == sorted(row["company_name"] for row in customers)
    assert metric(app, "顧客数") == str(csm["companies"])

    status = next(row["health_status"] for row in customers if row["health_status"])
    app.multiselect[0].set_value([status]).run()
    assert not app.exception
    assert sorted(table(app, 0)["企業"]) == sorted(row["company_name"] for row in customers
                                                  if row["health_status"] == status)
    assert set(table(app, 0)["ステータス"]) == {status}

    # the CSM's name finds the same customers
    [name] = query(warehouse, "select csm_name from marts.dash_csm_individual where csm_user_id = %s limit 1",
                   (csm["csm_user_id"],))
    by_name = open_page("csm", csm=name["csm_name"])
    assert sorted(table(by_name, 0)["企業"]) == sorted(row["company_name"] for row in customers)


def test_customer_page_charts_the_companys_mrr_history(open_page, warehouse):
    [company] = query(warehouse, """
        select company_id, count(distinct closing_mrr) as levels from marts.fct_mrr_company_monthly
        group by company_id order by count(distinct closing_mrr) desc, company_id limit 1""")
    history = query(warehouse, "select month_start, closing_mrr, movement from marts.fct_mrr_company_monthly "
                               "where company_id = %s order by month_start", (company["company_id"],))
    app = open_page("customer", company=company["company_id"])

    mrr_chart = charts(app)[0]["data"][0]
    assert [str(day)[:10] for day in values(mrr_chart["x"])] == [str(row["month_start"]) for row in history]
    assert values(mrr_chart["y"]) == [float(row["closing_mrr"]) for row in history]
    assert values(mrr_chart["text"]) == [row["movement"] for row in history]
    assert len(charts(app)) >= 2


@pytest.mark.parametrize(("page", "model"), [("executive", "dash_executive_monthly"), ("manager", "dash_cs_manager"),
                                             ("csm", "dash_csm_individual"), ("customer", "dash_customer_360")])
def test_a_missing_mart_says_which_model_to_build(open_page, warehouse_url, page, model):
    app = open_page(page, url=warehouse_url, language="en")
    [warning] = app.warning
    assert f"The mart `{model}` is not in the warehouse" in warning.value
    assert f"dbt build --select {model}" in warning.value


def test_labels_are_english_by_setting(open_page):
    app = open_page("executive", language="en")
    assert [element.label for element in app.metric][:2] == ["NRR (month)", "NRR (trailing 12 months)"]


def test_the_dashboard_marts_carry_their_descriptions_for_bi_tools(warehouse):
    """persist_docs: a BI tool reading the warehouse sees each dash_* mart's and column's description."""
    models = yaml.safe_load((settings.dbt_project_dir() / "models" / "marts" / "dashboards" /
                             "_dashboards__models.yml").read_text())["models"]
    for model in models:
        [table] = query(warehouse, "select obj_description(%s::regclass, 'pg_class') as comment",
                        (f"marts.{model['name']}",))
        assert table["comment"], f"{model['name']} has no table comment"
        comments = {row["column_name"]: row["comment"] for row in query(warehouse, """
            select attname as column_name, col_description(attrelid, attnum) as comment
            from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped""",
            (f"marts.{model['name']}",))}
        for column in model["columns"]:
            assert comments[column["name"]] == column["description"], (model["name"], column["name"])
