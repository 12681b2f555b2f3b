"""The warehouse's dbt docs site: `dbt docs generate` runs in cs_daily, and this publishes its output to one
folder that the Airflow UI serves through Cosmos's docs page ("dbt Docs" in the UI's menu).

The site is three files dbt writes to its target folder: index.html (the app), manifest.json (models, tests,
exposures, descriptions, lineage) and catalog.json (the warehouse's tables and column types). They are swapped
in together, so a reader never sees a new manifest beside an old catalog.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from csops import settings

SITE_FILES = ("index.html", "manifest.json", "catalog.json")
DOCS_SLUG = "csops"


def publish_docs(project_dir: str, **_context) -> Path:
    """Copy the site `dbt docs generate` wrote under `project_dir`/target to the docs folder; a Cosmos callback."""
    built = Path(project_dir) / "target"
    missing = [name for name in SITE_FILES if not (built / name).is_file()]
    if missing:
        raise FileNotFoundError(f"dbt docs generate left no {', '.join(missing)} in {built}; "
                                "its log above says why (a catalog needs the warehouse to be reachable)")
    site = settings.dbt_docs_dir()
    site.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dbt-docs-", dir=site.parent))
    for name in SITE_FILES:
        shutil.copy2(built / name, staging / name)
    previous = site.with_name(site.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if site.exists():
        site.rename(previous)
    staging.rename(site)
    shutil.rmtree(previous, ignore_errors=True)
    return site


def cosmos_docs_projects() -> str:
    """The value of AIRFLOW__COSMOS__DBT_DOCS_PROJECTS that makes the Airflow UI serve the published site."""
    return json.dumps({DOCS_SLUG: {"dir": str(settings.dbt_docs_dir()), "index": "index.html",
                                   "name": "Warehouse docs (dbt)"}})
