"""The activation tests share the dbt tests' built warehouse (one per session, a copy per module)."""

from tests.dbt.conftest import board, built_template, built_warehouse  # noqa: F401
