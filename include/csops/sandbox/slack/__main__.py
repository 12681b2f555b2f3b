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
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(arguments.home, ensure_credentials(arguments.home))
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
