"""Fixtures that start the Salesforce sandbox for tests (loaded by tests/conftest.py as a pytest plugin)."""
