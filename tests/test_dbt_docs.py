"""Publishing the dbt docs site: the three files move together, and a failed `dbt docs generate` says so."""

from __future__ import annotations

import json

import pytest

from csops.dbt_docs import SITE_FILES, cosmos_docs_projects, publish_docs


def write_site(project, marker: str) -> None:
    (project / "target").mkdir(parents=True, exist_ok=True)
    for name in SITE_FILES:
        (project / "target" / name).write_text(f"{marker} {name}")


def test_publishing_replaces_the_whole_site(tmp_path, monkeypatch):
    monkeypatch.setenv("CS_DBT_DOCS_DIR", str(tmp_path / "site"))
    write_site(tmp_path / "first", "first")
    publish_docs(str(tmp_path / "first"), context={})
    write_site(tmp_path / "second", "second")

    site = publish_docs(str(tmp_path / "second"), context={})

    assert site == tmp_path / "site"
    assert {path.name: path.read_text() for path in site.iterdir()} == {name: f"second {name}" for name in SITE_FILES}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "second", "site"], "no staging left behind"
    assert json.loads(cosmos_docs_projects())["csops"]["dir"] == str(site)


def test_a_missing_catalog_names_the_file_and_keeps_the_old_site(tmp_path, monkeypatch):
    monkeypatch.setenv("CS_DBT_DOCS_DIR", str(tmp_path / "site"))
    write_site(tmp_path / "good", "good")
    publish_docs(str(tmp_path / "good"))
    write_site(tmp_path / "broken", "broken")
    (tmp_path / "broken" / "target" / "catalog.json").unlink()

    with pytest.raises(FileNotFoundError, match="no catalog.json"):
        publish_docs(str(tmp_path / "broken"))

    assert (tmp_path / "site" / "manifest.json").read_text() == "good manifest.json"
