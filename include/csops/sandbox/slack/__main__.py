"""Run the Slack sink: `python -m csops.sandbox.slack --home DIR --port N` (HTTP on 127.0.0.1).

SIGTERM and Ctrl-C stop it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from csops.sandbox.slack.app import create_app
from csops.sandbox.slack.server import ensure_credentials


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m csops.sandbox.slack", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--webhook-path", help="the webhook's path after /services/ (default: generated, kept in "
                                               "the home's credentials.json)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    credentials = ensure_credentials(arguments.home)
    if arguments.webhook_path:
        credentials = {**credentials, "webhook_path": arguments.webhook_path.strip("/")}
    app = create_app(arguments.home, credentials)
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
