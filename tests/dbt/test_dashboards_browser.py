"""`csops dashboards` (what `make dashboards` calls) on the built test world, opened in a real browser.

`csops dashboards` serves the Streamlit app on a free port against a copy of the tests' built warehouse
(CS_WAREHOUSE_URL: no embedded server). Debian's headless Chromium (as tests/ui drives it) opens every page,
waits for its charts, checks the key text the marts say it must show and that no exception box is drawn,
and saves a screenshot of each page in the test's temporary folder; then Ctrl-C (SIGINT) must stop Streamlit
and csops and free the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.rows import dict_row
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from tests.browser_fixtures import body_text, headless_chromium, port_is_free, wait_for
from tests.conftest import VENV_BIN, free_port

READY_TIMEOUT = 120


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    port: int
    output_file: Path
    warehouse: str

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")


def query(warehouse: str, sql: str, params=()) -> list[dict]:
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def dashboards(built_warehouse, tmp_path_factory) -> Served:
    url, completed, _results = built_warehouse
    assert completed.returncode == 0, completed.stdout[-6000:]
    port = free_port()
    output_file = tmp_path_factory.mktemp("csops-dashboards") / "output.txt"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_CONN", "CS_"))}
    environment.update(CS_WAREHOUSE_URL=url, CS_DASHBOARDS_PORT=str(port),
                       CS_LOCAL_DIR=str(tmp_path_factory.mktemp("local")))
    with output_file.open("w") as sink:
        process = subprocess.Popen([str(VENV_BIN / "csops"), "dashboards"], env=environment, stdout=sink,
                                   stderr=subprocess.STDOUT)
    served = Served(process, f"http://127.0.0.1:{port}", port, output_file, url)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Dashboards are up" not in served.output():
            if process.poll() is not None:
                pytest.fail(f"csops dashboards exited ({process.returncode}):\n{served.output()[-5000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboards were not up within {READY_TIMEOUT}s:\n{served.output()[-5000:]}")
            time.sleep(0.5)
        yield served
    finally:
        if process.poll() is None:  # a test failed before the Ctrl-C test ran
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's headless Chromium; screenshots go to `artifacts_dir`."""
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), tmp_path_factory.mktemp("screenshots"))
    yield driver
    driver.quit()


def open_page(browser, url: str, charts: int, texts: list[str], screenshot: Path) -> str:
    """Open the page, wait until its charts are drawn and `texts` are shown; no exception box; a screenshot."""
    browser.get(url)
    try:
        wait_for(browser, lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= charts
                 and all(text in body_text(driver) for text in texts), timeout=90)
    except TimeoutException:
        browser.save_screenshot(str(screenshot))
        pytest.fail(f"{url} did not draw {charts} chart(s) and show {texts} within 90s; it shows "
                    f"{len(browser.find_elements(By.CSS_SELECTOR, '.js-plotly-plot'))} chart(s) and:\n"
                    f"{body_text(browser)[-3000:]}\nscreenshot: {screenshot}")
    time.sleep(1)  # the page's last elements after its charts
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']") == [], body_text(browser)[-3000:]
    browser.save_screenshot(str(screenshot))
    return body_text(browser)


def test_every_page_shows_its_charts_and_figures(dashboards, browser):
    # Tables are drawn on a canvas, so the text checked is the titles', headers' and metrics'.
    warehouse = dashboards.warehouse
    [month] = query(warehouse, "select month_start, nrr_t12m, mrr from marts.dash_executive_monthly "
                               "where is_last_closed_month")
    [team] = query(warehouse, "select mrr_under_management from marts.dash_cs_manager where is_team_total")
    # a Red company with a CSM and a Nexpro tenant (so its page charts usage too)
    [red] = query(warehouse, """
        select csm.company_name, csm.csm_user_id, csm.csm_name, csm.company_id
        from marts.dash_csm_individual as csm inner join marts.dash_customer_360 as company using (company_id)
        where csm.health_status = 'Red' and csm.csm_user_id is not null and company.tenant_id is not null
        order by csm.days_in_status desc, csm.company_id limit 1""")
    [csm] = query(warehouse, "select sum(mrr) as mrr from marts.dash_csm_individual where csm_user_id = %s",
                  (red["csm_user_id"],))
    [company] = query(warehouse, "select mrr from marts.dash_customer_360 where company_id = %s", (red["company_id"],))
    folder = browser.artifacts_dir
    pages = [
        ("executive", 5, ["KPIツリー", f"{month['month_start']:%Y-%m}", f"{month['nrr_t12m']:.1%}",
                          f"¥{month['mrr']:,.0f}"]),
        ("manager", 1, ["Redリスト", f"¥{team['mrr_under_management']:,.0f}"]),
        (f"csm?csm={red['csm_user_id']}", 1, [red["csm_name"], f"¥{csm['mrr'] or 0:,.0f}"]),
        (f"customer?company={red['company_id']}", 3, [red["company_name"], "MRRの推移と変動",
                                                      "—" if company["mrr"] is None else f"¥{company['mrr']:,.0f}"]),
    ]
    home = open_page(browser, dashboards.url, 0, ["CSリーダー", "CSM", "カスタマー360"], folder / "home.png")
    for link in ("executive", "manager", "csm", "customer"):
        assert browser.find_elements(By.CSS_SELECTOR, f"a[href$='/{link}']"), f"the home page links to /{link}"
    assert "Traceback" not in home
    for path, charts, texts in pages:
        text = open_page(browser, f"{dashboards.url}/{path}", charts, ["基準日", "2026-11-20", *texts],
                         folder / f"{path.split('?')[0]}.png")
        assert "Traceback" not in text
    assert all((folder / f"{name}.png").stat().st_size > 10_000 for name in ("executive", "manager", "csm", "customer"))
    print(f"screenshots in {folder}")


def test_ctrl_c_stops_the_dashboards_and_frees_the_port(dashboards):
    started = psutil.Process(dashboards.process.pid).children(recursive=True)
    assert any("streamlit" in " ".join(child.cmdline()) for child in started), "Streamlit runs under csops"
    dashboards.process.send_signal(signal.SIGINT)
    dashboards.process.wait(timeout=60)
    assert dashboards.process.returncode == 0, dashboards.output()[-3000:]
    assert "Stopped." in dashboards.output()
    _gone, alive = psutil.wait_procs(started, timeout=10)
    with suppress(psutil.Error):
        alive = [process for process in alive if process.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[(process.pid, process.cmdline()) for process in alive]}"
    assert port_is_free(dashboards.port)
