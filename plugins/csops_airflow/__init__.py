"""The project's Airflow-facing adapters: connections, hooks and operators that wrap `csops` for Airflow.

Installed with the `csops` package (so any Airflow that has the package installed can import them) and
also importable from Airflow's plugins folder.
"""
