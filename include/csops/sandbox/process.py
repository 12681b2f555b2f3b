"""A sandbox server run as a background process: started detached, found again by its pid file, stopped.

Each sandbox (Salesforce, board, the mail catcher, the Slack sink) is a `python -m <module>` process
with its state in a home folder: `server.pid` and `server.log` beside whatever else it keeps there. The
database URL of those that keep tables travels in an environment variable, never on the command line
(which other users of the machine can read).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests


@dataclass
class SandboxProcess:
    home: Path
    database_url: str
    _process = None  # the Popen of a server this object started

    label = "sandbox"  # how messages name it
    module = ""  # what `python -m` runs
    database_url_variable = ""  # the environment variable the server reads its database URL from

    @property
    def pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def server_arguments(self) -> list[str]:
        """The command-line arguments of the server process after `--home`."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Whatever must exist in the home before the server starts (credentials, certificates)."""

    def answers(self) -> bool:
        """One health check: whether the server answers."""
        raise NotImplementedError

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            process = psutil.Process(pid)
            return process.status() != psutil.STATUS_ZOMBIE and self.module in " ".join(process.cmdline())
        except psutil.Error:
            return False

    def start(self, timeout: float = 60) -> bool:
        """Start the server unless it already runs; returns True when this call started it."""
        if self.is_running():
            return False
        self.prepare()
        command = [sys.executable, "-m", self.module, "--home", str(self.home), *self.server_arguments()]
        environment = dict(os.environ)
        if self.database_url_variable:  # the mail catcher and the Slack sink keep files, not tables
            environment[self.database_url_variable] = self.database_url
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file.write_text(str(self._process.pid))
        self._wait_until_ready(timeout)
        return True

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RuntimeError(f"The {self.label} exited with code {self._process.returncode} while starting. "
                                   f"Its log ({self.log_file}):\n{self._log_tail()}")
            try:
                if self.answers():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"The {self.label} did not answer within {timeout:.0f} s. If its port is taken, choose "
                           f"another. Its log ({self.log_file}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` seconds)."""
        pid = self._pid()
        if pid is not None and self.is_running():
            process = psutil.Process(pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._process is not None:
            self._process.wait(timeout)
            self._process = None
        self.pid_file.unlink(missing_ok=True)
