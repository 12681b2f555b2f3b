"""csops's own decisions that need no server: when the dbt manifest must be parsed again."""

from __future__ import annotations

import os
import shutil

from csops import settings
from csops.cli import manifest_is_current


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
