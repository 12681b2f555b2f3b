"""`csops ui` (what `make ui` calls): a real Airflow 3, driven in a real browser.

`csops ui` starts on free ports with its own local folder and the small test world: embedded Postgres,
the Nexpro sandbox, then api-server, scheduler, dag-processor and triggerer. The tests use it in order:
log in through the login page and find `cs_daily` without import errors; trigger a run and wait for it
and every task in it to succeed, and see the run's page; then Ctrl-C (SIGINT) must stop every process
csops started, the embedded server included, and free the port.

The browser is Debian's headless Chromium with its chromedriver (installed here with apt-get when
missing), driven by Selenium; nothing is downloaded at test time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from tests.browser_fixtures import body_text, headless_chromium, port_is_free, wait_for
from tests.conftest import TEST_WORLD, VENV_BIN, free_port

READY_TIMEOUT = 300  # csops ui: server, sandbox, migration, dbt parse, four services
RUN_TIMEOUT = 600  # one cs_daily run on the small world takes a minute or two on 2 busy cores


@dataclass
class AirflowUI:
    process: subprocess.Popen
    url: str
    port: int
    postgres_port: int
    password: str
    local_dir: Path
    output_file: Path

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")


class Api:
    """Airflow's REST API (/api/v2) with a token from POST /auth/token."""

    def __init__(self, url: str, password: str):
        self.url = url
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def get(self, path: str) -> dict:
        return self.call("GET", path)


def processes_of(ui: AirflowUI) -> list[psutil.Process]:
    """Every live process of this `csops ui`: its descendants (services, workers, tasks) and every process
    whose environment points at the test's local folder (the embedded Postgres, daemonised by pg_ctl; an
    orphan). A process renamed by setproctitle may hide its environment, hence both."""
    found = {}
    with suppress(psutil.Error):
        found = {child.pid: child for child in psutil.Process(ui.process.pid).children(recursive=True)}
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            if process.environ().get("CS_LOCAL_DIR") == str(ui.local_dir):
                found.setdefault(process.pid, process)
    alive = []
    for process in found.values():
        with suppress(psutil.Error):
            if process.pid != ui.process.pid and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory) -> AirflowUI:
    local_dir = tmp_path_factory.mktemp("local")
    output_file = tmp_path_factory.mktemp("csops-ui") / "output.txt"
    port, postgres_port = free_port(), free_port()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("AIRFLOW", "CS_", "REQUESTS_CA_BUNDLE"))}
    environment.update(
        CS_LOCAL_DIR=str(local_dir), CS_LOCAL_PG_PORT=str(postgres_port), CS_AIRFLOW_PORT=str(port),
        CS_SALESFORCE_PORT=str(free_port()), CS_SALESFORCE_PROXY_PORT=str(free_port()),
        CS_BOARD_PORT=str(free_port()), CS_MAIL_CATCHER_PORT=str(free_port()), CS_SLACK_SINK_PORT=str(free_port()),
        CS_TASK_RETRIES="0",  # a failing task fails the run now, not after two retries five minutes apart
        # Switching cs_daily on would also start the latest scheduled run; the test waits for its own only.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
    )
    command = [str(VENV_BIN / "csops"), "ui", "--accounts", str(TEST_WORLD.accounts), "--days", str(TEST_WORLD.days),
               "--seed", str(TEST_WORLD.seed)]
    with output_file.open("w") as sink:
        process = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    ui = AirflowUI(process, f"http://127.0.0.1:{port}", port, postgres_port, "", local_dir, output_file)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Airflow is up" not in output_file.read_text():
            if process.poll() is not None:
                pytest.fail(f"csops ui exited ({process.returncode}) before Airflow was up:\n"
                            f"{output_file.read_text()[-5000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"Airflow was not up within {READY_TIMEOUT}s:\n{output_file.read_text()[-5000:]}")
            time.sleep(1)
        time.sleep(0.5)  # the rest of the banner
        ui.password = re.search(r"user admin, password (\S+)", output_file.read_text()).group(1)
        yield ui
    finally:
        if process.poll() is None:  # a test failed before the Ctrl-C test ran
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        for leftover in processes_of(ui):
            leftover.kill()


@pytest.fixture(scope="module")
def api(airflow_ui) -> Api:
    return Api(airflow_ui.url, airflow_ui.password)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), tmp_path_factory.mktemp("browser"))
    yield driver
    driver.quit()


def test_log_in_and_see_cs_daily_without_import_errors(airflow_ui, browser, api):
    for service in ("api-server", "scheduler", "dag-processor", "triggerer"):
        log_file = airflow_ui.local_dir / "logs" / "ui" / f"{service}.log"
        assert log_file.exists() and str(log_file) in airflow_ui.output(), "each service's log file is named"

    browser.get(airflow_ui.url)
    username = wait_for(browser, expected_conditions.presence_of_element_located((By.NAME, "username")),
                        message="the login page shows a username field")
    username.send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(airflow_ui.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, lambda driver: "/auth/login" not in driver.current_url, message="logged in")

    # The dag-processor parses dags/ within seconds of starting; the list shows cs_daily once it has.
    deadline = time.monotonic() + 120
    while True:
        browser.get(f"{airflow_ui.url}/dags")
        try:
            wait_for(browser, expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "a[href$='/dags/cs_daily']")), timeout=15)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    assert api.get("/api/v2/importErrors")["total_entries"] == 0, api.get("/api/v2/importErrors")
    dag = api.get("/api/v2/dags/cs_daily")
    assert not dag["has_import_errors"]
    assert "Import Error" not in body_text(browser), "the DAG list reports no import errors"


def test_trigger_cs_daily_in_the_ui_and_see_it_succeed(airflow_ui, browser, api):
    # cs_daily starts paused, and a paused DAG's runs wait; the scheduled runs are off in this test.
    api.call("PATCH", "/api/v2/dags/cs_daily", {"is_paused": False})
    browser.get(f"{airflow_ui.url}/dags/cs_daily")
    wait_for(browser, expected_conditions.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Trigger']")), message="the DAG page has a Trigger button").click()
    # The dialog's defaults: a single run, logical date now (the run computes the business day before it;
    # the test does not depend on which day that is), the DAG's params as they are.
    confirm = wait_for(browser, expected_conditions.presence_of_element_located(
        (By.XPATH, "//*[@role='dialog']//button[normalize-space()='Trigger']")), message="the trigger dialog")
    browser.execute_script("arguments[0].scrollIntoView()", confirm)
    wait_for(browser, expected_conditions.element_to_be_clickable(confirm)).click()
    wait_for(browser, lambda driver: "/dags/cs_daily/runs/" in driver.current_url,
             message="triggering opens the new run's page")
    run_id = urllib.parse.unquote(browser.current_url.split("/dags/cs_daily/runs/", 1)[1].split("?")[0])
    run_path = f"/api/v2/dags/cs_daily/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    assert api.get(run_path)["triggered_by"] == "ui"

    deadline = time.monotonic() + RUN_TIMEOUT
    while (state := api.get(run_path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the run is still {state} after {RUN_TIMEOUT}s"
        time.sleep(5)
    instances = []  # the API hands out at most 100 a page (api.maximum_page_limit)
    while page := api.get(f"{run_path}/taskInstances?limit=100&offset={len(instances)}")["task_instances"]:
        instances += page
    not_succeeded = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in instances if ti["state"] != "success"]
    assert state == "success", f"cs_daily {run_id} {state}; tasks not succeeded: {not_succeeded}"
    assert not_succeeded == []
    task_ids = {ti["task_id"] for ti in instances}
    assert {"nexpro_extract.load_table", "source_freshness", "summarize"} <= task_ids
    assert any(task_id.startswith("dbt.") for task_id in task_ids), "Cosmos rendered the dbt models as tasks"
    [build] = [ti for ti in instances if ti["task_id"] == "dbt.dbt_producer_watcher"]
    assert build["try_number"] == 1, "one dbt build, not retried"
    model_tasks = [ti for ti in instances if ti["task_id"].startswith("dbt.") and ti["task_id"].endswith(".run")]
    built = datetime.fromisoformat(build["end_date"])
    assert model_tasks and all(datetime.fromisoformat(ti["start_date"]) >= built for ti in model_tasks), \
        "the scheduler starts the model tasks once the build is over; they report its results"
    assert sum(ti["task_id"] == "nexpro_extract.load_table" for ti in instances) > 1, "mapped extract tasks"

    browser.refresh()
    wait_for(browser, lambda driver: run_id in body_text(driver) and "Success" in body_text(driver)
             and "summarize" in body_text(driver), message="the run's page shows it succeeded, with its tasks")

    # The run published the warehouse's dbt docs site; the UI lists it under Browse and serves it.
    views = [view for plugin in api.get("/api/v2/plugins")["plugins"] for view in plugin.get("external_views", [])]
    [docs] = [view for view in views if view["name"] == "Warehouse docs (dbt)"]
    assert docs["category"] == "Browse"
    browser.get(airflow_ui.url + docs["href"])
    wait_for(browser, lambda driver: "dbt Docs" in driver.title, message="the dbt docs site opens from the UI")


def test_ctrl_c_stops_every_process_and_frees_the_port(airflow_ui):
    started = processes_of(airflow_ui)
    commands = " ".join(" ".join(process.cmdline()) for process in started)
    for service in ("api_server", "scheduler", "dag-processor", "triggerer", "postgres"):
        assert service in commands, f"{service} is running before Ctrl-C"

    began = time.monotonic()
    airflow_ui.process.send_signal(signal.SIGINT)
    airflow_ui.process.wait(timeout=120)
    output = airflow_ui.output()
    assert airflow_ui.process.returncode == 0, output[-3000:]
    assert "Airflow services stopped" in output and "local Postgres stopped" in output and "Stopped." in output
    print(f"csops ui stopped {len(started)} processes in {time.monotonic() - began:.1f}s")

    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
    assert processes_of(airflow_ui) == []
    assert port_is_free(airflow_ui.port) and port_is_free(airflow_ui.postgres_port)
