"""Debian's headless Chromium for the browser tests (the Airflow UI, the dashboards): installed with apt-get
when missing, started with the flags that keep it off the closed network, and the small helpers the tests
share. A failing test's screenshot goes to the driver's `artifacts_dir` (tests/ui/conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000"]


def chromium_and_driver() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed with apt-get when missing (we may be root)."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("no chromium/chromedriver, and no root apt-get to install them: "
                    "apt-get install -y chromium chromium-driver")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        completed = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
        if completed.returncode != 0:
            pytest.skip(f"could not install Chromium: `{' '.join(command)}` failed:\n"
                        f"{(completed.stdout + completed.stderr)[-2000:]}")
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if not all(found):
        pytest.skip("apt-get installed chromium and chromium-driver, yet chromium or chromedriver is not on PATH")
    return found


def headless_chromium(profile_dir: Path, artifacts_dir: Path):
    """A Chromium WebDriver with its own profile folder; `artifacts_dir` receives screenshots."""
    chromium, chromedriver = chromium_and_driver()
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.artifacts_dir = artifacts_dir
    return driver


def wait_for(browser, condition, timeout: float = 60, message: str = ""):
    return WebDriverWait(browser, timeout, poll_frequency=0.5).until(condition, message)


def body_text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def port_is_free(port: int) -> bool:
    """Nothing listens there: a server could bind it now (closed connections in TIME_WAIT aside)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
