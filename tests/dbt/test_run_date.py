"""dbt's own default run date is the pipeline's: the last complete day in Tokyo, never the day still going on."""

from __future__ import annotations

import subprocess

import pendulum

from csops import settings
from csops.local_stack import dbt_environment
from tests.conftest import VENV_BIN


def compiled_run_date(warehouse_url: str, tmp_path) -> subprocess.CompletedProcess:
    project = settings.dbt_project_dir()
    return subprocess.run(
        [str(VENV_BIN / "dbt"), "compile", "--inline", "select {{ run_date() }} as run_date", "--quiet",
         "--project-dir", str(project), "--profiles-dir", str(project), "--target-path", str(tmp_path / "target"),
         ],
        env={**dbt_environment(warehouse_url), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)


def test_dbt_run_by_hand_without_a_run_date_scores_the_last_complete_tokyo_day(warehouse_url, tmp_path):
    before = settings.run_date_for(pendulum.now("UTC"))
    completed = compiled_run_date(warehouse_url, tmp_path)
    after = settings.run_date_for(pendulum.now("UTC"))
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    today_in_tokyo = pendulum.now(settings.BUSINESS_TIMEZONE).to_date_string()
    assert f"cast('{before}' as date)" in completed.stdout or f"cast('{after}' as date)" in completed.stdout
    assert f"cast('{today_in_tokyo}' as date)" not in completed.stdout, "not the Tokyo day still going on"

