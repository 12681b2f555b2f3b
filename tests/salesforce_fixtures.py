"""Fixtures that start the Salesforce sandbox for tests (loaded by tests/conftest.py as a pytest plugin).

`salesforce_sandbox` runs one sandbox org for the whole session (its own database, free ports, a
temporary home) with `REQUESTS_CA_BUNDLE` pointing at its CA bundle, so every `requests`-based client
trusts it. `salesforce_client` is a `simple_salesforce.Salesforce` logged in through the proxy, as a
production client would be, with faults cleared, API usage reset and the default daily limit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from simple_salesforce import Salesforce

from csops.sandbox.salesforce.objects import API_VERSION
from csops.sandbox.salesforce.server import SalesforceSandbox
from csops.sandbox.salesforce.store import DEFAULT_DAILY_LIMIT, DEFAULT_SESSION_LIFETIME


@pytest.fixture(scope="session")
def salesforce_sandbox(postgres, tmp_path_factory) -> SalesforceSandbox:
    from tests.conftest import create_database, free_port

    sandbox = SalesforceSandbox(tmp_path_factory.mktemp("salesforce"), create_database(postgres, "salesforce"),
                                free_port(), free_port())
    with pytest.MonkeyPatch.context() as patch:
        sandbox.start()
        patch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle()))
        try:
            yield sandbox
        finally:
            sandbox.stop()


@contextmanager
def sandbox_beside(sandbox: SalesforceSandbox, database_url: str, home: Path) -> Iterator[SalesforceSandbox]:
    """A second org on its own database, for tests that need an org no other test changes.

    It reuses the session sandbox's certificate, so the CA bundle the session trusts covers it too.
    """
    from tests.conftest import free_port

    home.mkdir(parents=True, exist_ok=True)
    for name in ("server-cert.pem", "server-key.pem", "ca.pem"):
        shutil.copy2(sandbox.home / name, home / name)
    other = SalesforceSandbox(home, database_url, free_port(), free_port())
    other.start()
    try:
        yield other
    finally:
        other.stop()


def reset_sandbox(sandbox: SalesforceSandbox) -> None:
    """Back to a quiet org: no scripted faults, nothing used of the default daily budget, default sessions."""
    sandbox.admin.clear_faults()
    sandbox.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    sandbox.admin.set_session_lifetime(DEFAULT_SESSION_LIFETIME)
    sandbox.admin.reset_usage()


@pytest.fixture
def salesforce_client(salesforce_sandbox) -> Salesforce:
    reset_sandbox(salesforce_sandbox)
    login = salesforce_sandbox.credentials()
    return Salesforce(username=login.username, password=login.password, security_token=login.security_token,
                      proxies=salesforce_sandbox.proxies(), version=API_VERSION)
