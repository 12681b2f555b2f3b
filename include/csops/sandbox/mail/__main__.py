"""Run the mail catcher: `python -m csops.sandbox.mail --home DIR --port N` (SMTP on 127.0.0.1).

SIGTERM and Ctrl-C stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller

from csops.sandbox.mail.catcher import Authenticator, CatcherHandler, Mailbox
from csops.sandbox.mail.server import ensure_credentials

MAX_MESSAGE_BYTES = 25 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m csops.sandbox.mail", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosmtpd logs every SMTP command at INFO (and a deprecation note per login); the caught messages suffice.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    credentials = ensure_credentials(arguments.home)
    controller = Controller(CatcherHandler(Mailbox(arguments.home)), hostname=arguments.host, port=arguments.port,
                            server_hostname="mail-catcher.local", ident="csops mail catcher",
                            authenticator=Authenticator(credentials["login"], credentials["password"]),
                            auth_require_tls=False, enable_SMTPUTF8=True, data_size_limit=MAX_MESSAGE_BYTES)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controller.start()
    logging.info("mail catcher listening on %s:%d, keeping messages in %s", arguments.host, arguments.port,
                 arguments.home)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
