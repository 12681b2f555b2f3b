"""Run the board sandbox API: `python -m csops.sandbox.board --home DIR --port N` (HTTP on 127.0.0.1).

The database URL comes from the environment variable CSOPS_BOARD_SANDBOX_DATABASE_URL. SIGTERM and
Ctrl-C stop it.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from csops.sandbox.board.app import create_app
from csops.sandbox.board.server import DATABASE_URL_VARIABLE, ensure_credentials


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m csops.sandbox.board", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    database_url = os.environ.get(DATABASE_URL_VARIABLE)
    if not database_url:
        raise SystemExit(f"Set {DATABASE_URL_VARIABLE} to the board sandbox's Postgres URL.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    app = create_app(database_url, ensure_credentials(arguments.home))
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
