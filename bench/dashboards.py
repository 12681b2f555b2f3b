"""Dashboards benchmark: how long each page takes to draw on the server, against a built warehouse.

    .venv/bin/python bench/dashboards.py             # the warehouse `make run` built (or CS_WAREHOUSE_URL)
    .venv/bin/python bench/dashboards.py --runs 10

Each page of dashboards/app.py is run `--runs` times with Streamlit's AppTest, in this process, as a reader's
visit runs it on the server: its SQL on the marts and its Python (tables, plotly figures); the browser's
drawing is not in it. The CSM page is the CSM with the most customers, the Customer 360 page the company with
the most months of MRR. Printed: the rows of each page's mart, the median and slowest run in milliseconds.
The first run of all (imports) is left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from csops import settings
from csops.dashboards.marts import read_mart
from csops.dashboards.server import warehouse


def visit(page: str, query_params: dict[str, str]) -> float:
    """Seconds one visit of `page` takes (the app's entry point, then the page), failing on an exception."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(settings.dashboards_dir() / "app.py"), default_timeout=120).run()
    for key, value in query_params.items():
        app.query_params[key] = value
    app.switch_page(f"views/{page}.py")
    started = time.perf_counter()
    app.run()
    elapsed = time.perf_counter() - started
    if app.exception or app.warning:
        raise SystemExit(f"/{page} failed: {[element.value for element in [*app.exception, *app.warning]]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with warehouse() as url:
        os.environ["CS_WAREHOUSE_URL"] = url
        portfolio = read_mart("dash_csm_individual", columns=("csm_user_id",))
        csm = portfolio["csm_user_id"].value_counts().index[0]
        company = read_mart("fct_mrr_company_monthly", columns=("company_id",))["company_id"].value_counts().index[0]
        pages = [("executive", {}, "dash_executive_monthly"), ("manager", {}, "dash_cs_manager"),
                 ("csm", {"csm": csm}, "dash_csm_individual"), ("customer", {"company": company}, "dash_customer_360")]
        visit("executive", {})  # imports and first connections
        print(f"{'page':<10} {'mart rows':>10} {'median ms':>10} {'max ms':>8}")
        for page, query_params, mart in pages:
            timings = [visit(page, query_params) for _ in range(arguments.runs)]
            rows = len(read_mart(mart, columns=("as_of_date",)))
            print(f"/{page:<9} {rows:>10,} {statistics.median(timings) * 1000:>10.0f} {max(timings) * 1000:>8.0f}")


if __name__ == "__main__":
    main()
