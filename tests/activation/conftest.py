"""The activation tests read the warehouse the dbt tests build from the test world (one build per session)."""

from tests.dbt.conftest import board, built_template, built_warehouse, dbt_target  # noqa: F401 (fixtures)
