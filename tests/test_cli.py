"""csops's own decisions that need no server: when the dbt manifest must be parsed again; when `csops dashboards`
runs the daily job before serving."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import contextmanager

from csops import cli, settings
from csops.cli import manifest_is_current
from csops.dashboards import server
from tests.conftest import free_port


def test_the_manifest_is_parsed_again_only_after_a_project_file_changes(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), project, ignore=shutil.ignore_patterns("logs", "dbt_packages"))
    manifest = project / "target" / "manifest.json"
    manifest.write_text("{}")
    assert manifest_is_current(project)

    model = project / "models" / "marts" / "usage" / "fct_tenant_daily_usage.sql"
    os.utime(model, (manifest.stat().st_mtime + 1, manifest.stat().st_mtime + 1))
    assert not manifest_is_current(project), "an edited model needs a new manifest"

    os.utime(model, (manifest.stat().st_mtime - 1, manifest.stat().st_mtime - 1))
    (project / "target" / "run_results.json").write_text("{}")
    assert manifest_is_current(project), "dbt's own output does not count as an edit"

    manifest.unlink()
    assert not manifest_is_current(project)


def test_dashboards_run_the_daily_job_first_only_for_a_local_warehouse_without_the_marts(monkeypatch):
    runs, served = [], []

    @contextmanager
    def warehouse():
        yield settings.configured_warehouse_url() or "postgresql://postgres@127.0.0.1/warehouse"

    class Dashboards:  # serves until Ctrl-C
        def __init__(self, url, port, log_file, host):
            served.append((url, port, host))

        def __enter__(self):
            return self

        def __exit__(self, *_exc):
            pass

        def wait_until_ready(self):
            pass

        def banner(self):
            return "up"

        def watch(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(server, "warehouse", warehouse)
    monkeypatch.setattr(server, "Dashboards", Dashboards)
    monkeypatch.setattr(server, "missing_marts", lambda _url: ["dash_cs_manager"])
    monkeypatch.setattr(cli, "command_run", runs.append)
    for name in ("AIRFLOW_CONN_CS_WAREHOUSE", "CS_WAREHOUSE_URL", "CS_DASHBOARDS_HOST"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    monkeypatch.setenv("CS_DASHBOARDS_PORT", str(port))
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        cli.main(["dashboards", "--accounts", "7", "--days", "30"])
        [run] = runs  # the local warehouse lacks the marts: `csops run` with the same world first, then serve
        assert (run.accounts, run.days, run.seed, run.date, run.full_refresh, run.rebuild_marts) == \
            (7, 30, 42, None, None, False)
        assert served == [("postgresql://postgres@127.0.0.1/warehouse", port, "127.0.0.1")]

        runs.clear(), served.clear()
        monkeypatch.setenv("CS_WAREHOUSE_URL", "postgresql://reader@warehouse.example/warehouse")
        cli.main(["dashboards"])
        assert runs == [], "a configured warehouse is only read"
        assert served == [("postgresql://reader@warehouse.example/warehouse", port, "127.0.0.1")]
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
