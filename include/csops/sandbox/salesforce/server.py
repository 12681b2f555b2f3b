"""Run the Salesforce sandbox org as a background process, and reach it as a client.

The sandbox keeps its state in a home folder: a local certificate authority and the server certificate
it issued (`ca.pem`, `server-cert.pem`, `server-key.pem`), the CA bundle clients trust
(`ca-bundle.pem`: certifi's roots plus the local CA, so other HTTPS still verifies), the integration
user's credentials and the admin token (`credentials.json`, mode 0600), the pid file and the log.
The org's data lives in the Postgres database given by URL.

Clients reach it with settings only: `proxies()` (an HTTP CONNECT proxy that admits `*.salesforce.com`)
and `REQUESTS_CA_BUNDLE=<home>/ca-bundle.pem`.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

import certifi
import requests
import trustme

from csops.sandbox.process import SandboxProcess
from csops.sandbox.salesforce.objects import API_VERSION, Field
from csops.sandbox.salesforce.store import FaultRule

# The server process reads the database URL from here (kept off the command line, which others can see).
DATABASE_URL_VARIABLE = "CSOPS_SALESFORCE_SANDBOX_DATABASE_URL"
PUBLIC_HOST = "csops-sandbox.my.salesforce.com"
CERTIFICATE_NAMES = ("login.salesforce.com", "test.salesforce.com", "*.salesforce.com", "*.my.salesforce.com",
                     "localhost", "127.0.0.1")
INTEGRATION_USERNAME = "integration@csops-sandbox.example.com"
ADMIN_TOKEN_HEADER = "X-Sandbox-Admin-Token"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    security_token: str


def credentials_file(home: Path) -> Path:
    return home / "credentials.json"


def ensure_credentials(home: Path) -> dict:
    """The integration user's login and the admin token, generated on first use and kept private."""
    path = credentials_file(home)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        values = {"username": INTEGRATION_USERNAME, "password": secrets.token_urlsafe(18),
                  "security_token": secrets.token_urlsafe(18).replace("-", "x").replace("_", "y"),
                  "admin_token": secrets.token_urlsafe(32)}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(values, handle, indent=2)
    return json.loads(path.read_text())


def ensure_certificates(home: Path) -> tuple[Path, Path]:
    """The server's certificate and key, issued once by a local CA; also writes the clients' CA bundle."""
    home.mkdir(parents=True, exist_ok=True)
    cert, key, ca = home / "server-cert.pem", home / "server-key.pem", home / "ca.pem"
    if not (cert.exists() and key.exists() and ca.exists()):
        authority = trustme.CA(organization_name="csops Salesforce sandbox")
        issued = authority.issue_cert(*CERTIFICATE_NAMES)
        issued.cert_chain_pems[0].write_to_path(str(cert))
        for extra in issued.cert_chain_pems[1:]:
            extra.write_to_path(str(cert), append=True)
        key.touch(mode=0o600)
        issued.private_key_pem.write_to_path(str(key))
        authority.cert_pem.write_to_path(str(ca))
    # The machine's trusted CAs (which may include a corporate proxy's), certifi's, and the sandbox's: a
    # process given this bundle through REQUESTS_CA_BUNDLE still reaches every other HTTPS server.
    system = ssl.get_default_verify_paths().cafile
    trusted = [Path(path) for path in dict.fromkeys([system, certifi.where()]) if path and Path(path).is_file()]
    bundle = home / "ca-bundle.pem"
    bundle.write_text("\n".join(path.read_text() for path in trusted) + "\n# csops Salesforce sandbox\n"
                      + ca.read_text())
    return cert, key


@dataclass
class SandboxAdmin:
    """The sandbox's admin API (not part of Salesforce): faults, API limits, sessions, custom fields."""

    base_url: str
    token: str
    ca_file: Path

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/sandbox/admin/{path}", json=body, timeout=30,
                                    headers={ADMIN_TOKEN_HEADER: self.token}, verify=str(self.ca_file))
        if response.status_code >= 400:
            raise RuntimeError(f"Sandbox admin {method} {path} failed ({response.status_code}): {response.text}")
        return response.json() if response.content else {}

    def add_fault(self, rule: FaultRule) -> int:
        return self._call("POST", "faults", asdict(rule))["id"]

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_daily_limit(self, limit: int) -> None:
        self._call("PUT", "limits", {"daily_limit": limit})

    def reset_usage(self) -> None:
        self._call("POST", "limits/reset")

    def usage(self) -> dict:
        """Today's API calls: `{"used": …, "limit": …}`."""
        return self._call("GET", "limits")

    def expire_sessions(self) -> int:
        return self._call("POST", "sessions/expire")["expired"]

    def set_session_lifetime(self, seconds: int) -> None:
        self._call("PUT", "sessions/lifetime", {"seconds": seconds})

    def add_custom_field(self, object_name: str, new_field: Field) -> None:
        self._call("POST", "custom-fields", {"object": object_name, "field": asdict(new_field)})


@dataclass
class SalesforceSandbox(SandboxProcess):
    port: int
    proxy_port: int

    label = "Salesforce sandbox"
    module = "csops.sandbox.salesforce"
    database_url_variable = DATABASE_URL_VARIABLE

    @property
    def instance_url(self) -> str:
        """The org's address without the proxy (the certificate covers 127.0.0.1)."""
        return f"https://127.0.0.1:{self.port}"

    def ca_bundle(self) -> Path:
        return self.home / "ca-bundle.pem"

    def proxies(self) -> dict:
        return {"https": f"http://127.0.0.1:{self.proxy_port}"}

    def credentials(self) -> Credentials:
        values = ensure_credentials(self.home)
        return Credentials(values["username"], values["password"], values["security_token"])

    @property
    def admin(self) -> SandboxAdmin:
        return SandboxAdmin(self.instance_url, ensure_credentials(self.home)["admin_token"], self.home / "ca.pem")

    def airflow_connection(self) -> dict:
        """The Airflow connection (AIRFLOW_CONN_SALESFORCE_DEFAULT as JSON) for SalesforceHook."""
        login = self.credentials()
        return {"conn_type": "salesforce", "login": login.username, "password": login.password,
                "extra": {"security_token": login.security_token, "proxies": self.proxies(), "version": API_VERSION}}

    def server_arguments(self) -> list[str]:
        return ["--port", str(self.port), "--proxy-port", str(self.proxy_port)]

    def prepare(self) -> None:
        ensure_certificates(self.home)
        ensure_credentials(self.home)

    def answers(self) -> bool:
        response = requests.get(f"{self.instance_url}/sandbox/health", verify=str(self.home / "ca.pem"), timeout=2)
        return response.status_code == 200
