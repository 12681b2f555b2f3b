"""`AirflowServices`, the process management behind `csops ui`, with a stand-in `airflow` script: seconds,
not minutes. The real Airflow is in test_airflow_ui.py.

The stand-in's api-server serves a health file over HTTP; its scheduler leaves a child in a session of its
own (as Airflow's task processes have process groups of their own), which killpg cannot reach.
"""

from __future__ import annotations

import os
import socket
import stat
import time

import psutil
import pytest

from csops.local_airflow import SERVICES, AirflowServices, ServiceDied, ensure_port_free
from tests.conftest import free_port

FAKE_AIRFLOW = """#!/bin/bash
case "$1" in
  api-server) exec python3 -m http.server --bind 127.0.0.1 "${@: -1}" --directory "$FAKE_ROOT" ;;
  scheduler) setsid sleep 300 & echo "scheduler up"; wait ;;
  triggerer) echo "triggerer up"; sleep "$TRIGGERER_LIFETIME"; echo "triggerer: cannot reach the database"; exit 3 ;;
  *) exec sleep 300 ;;
esac
"""


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "airflow"
    script.write_text(FAKE_AIRFLOW)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    health = tmp_path / "root" / "api" / "v2" / "monitor" / "health"
    health.parent.mkdir(parents=True)
    health.write_text('{"metadatabase": {"status": "healthy"}}')
    return script


def services(fake, tmp_path, triggerer_lifetime: int) -> AirflowServices:
    environment = {**os.environ, "FAKE_ROOT": str(tmp_path / "root"), "TRIGGERER_LIFETIME": str(triggerer_lifetime)}
    return AirflowServices(environment, free_port(), tmp_path / "logs", task_grace=2, stop_grace=5, airflow=fake)


def escaped_children(airflow: AirflowServices) -> list[psutil.Process]:
    """Processes of the services in a session of their own, out of reach of the services' process groups."""
    services = {service.process.pid for service in airflow.services}
    return [process for process in airflow.leftover_processes()
            if process.pid not in services and os.getsid(process.pid) == process.pid]


def test_ready_when_the_api_server_answers_and_stop_leaves_nothing(fake, tmp_path):
    with services(fake, tmp_path, triggerer_lifetime=300) as airflow:
        assert airflow.wait_until_ready(timeout=30) == {"metadatabase": {"status": "healthy"}}
        deadline = time.monotonic() + 10
        while not escaped_children(airflow):
            assert time.monotonic() < deadline, "the scheduler's child started"
            time.sleep(0.2)
        airflow.remember_descendants()
        started = [psutil.Process(service.process.pid) for service in airflow.services] + escaped_children(airflow)
        assert {path.name for path in (tmp_path / "logs").iterdir()} == {f"{name}.log" for name in SERVICES}
    _gone, alive = psutil.wait_procs(started, timeout=5)
    assert alive == [], "the services and the child that left their process group are all stopped"


def test_a_service_that_dies_stops_the_rest_and_says_why(fake, tmp_path):
    airflow = services(fake, tmp_path, triggerer_lifetime=2)
    with pytest.raises(ServiceDied) as died, airflow:
        airflow.wait_until_ready(timeout=30)
        airflow.watch()
    message = str(died.value)
    assert "triggerer stopped on its own (exit 3)" in message
    assert "triggerer: cannot reach the database" in message and "triggerer.log" in message
    assert airflow.services == [], "stopped"
    assert airflow.leftover_processes() == []


def test_a_taken_port_is_refused_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit, match="CS_AIRFLOW_PORT"):
            ensure_port_free(taken.getsockname()[1])
