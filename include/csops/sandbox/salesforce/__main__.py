"""Run the Salesforce sandbox org: `python -m csops.sandbox.salesforce --home DIR --port N --proxy-port M`.

Two listeners on 127.0.0.1 in one process:
1. the HTTPS API (uvicorn) with the certificate of the sandbox's local CA;
2. an HTTP CONNECT proxy that tunnels `<anything>.salesforce.com:443` to the HTTPS API, so unmodified
   clients (whose login URL is fixed to `https://login.salesforce.com`) reach the sandbox; TLS stays end
   to end. Any other destination is refused (403): it is not an open proxy.

The database URL comes from the environment variable CSOPS_SALESFORCE_SANDBOX_DATABASE_URL. SIGTERM
and Ctrl-C stop both listeners.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

import uvicorn

from csops.sandbox.salesforce.app import create_app
from csops.sandbox.salesforce.server import DATABASE_URL_VARIABLE, ensure_certificates, ensure_credentials

log = logging.getLogger("csops.sandbox.salesforce")

TUNNEL_SUFFIX = ".salesforce.com"
REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"


def tunnel_allowed(target: str) -> bool:
    """Only `<host>.salesforce.com:443` is tunnelled."""
    host, _, port = target.rpartition(":")
    return port == "443" and host.lower().endswith(TUNNEL_SUFFIX)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle_proxy_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, api_port: int) -> None:
    try:
        request_line = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()).strip():  # the request's headers: nothing in them is needed
            pass
    except (ConnectionError, ValueError):
        writer.close()
        return
    method, target = (request_line + ["", ""])[:2]
    if method.upper() != "CONNECT" or not tunnel_allowed(target):
        log.info("proxy refused %s %s", method, target)
        message = b"This proxy only tunnels HTTPS to *.salesforce.com (the Salesforce sandbox).\n"
        writer.write(REFUSED % (len(message), message))
        await writer.drain()
        writer.close()
        return
    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", api_port)
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def serve(home: Path, database_url: str, port: int, proxy_port: int) -> None:
    certificate, key = ensure_certificates(home)
    app = create_app(database_url, ensure_credentials(home))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ssl_certfile=str(certificate), ssl_keyfile=str(key),
                            log_config=None, access_log=False, timeout_graceful_shutdown=5,
                            # Clients keep connections (and proxy tunnels) open between calls; closing them
                            # after uvicorn's default 5 idle seconds races with a client's next request.
                            timeout_keep_alive=120)
    server = uvicorn.Server(config)
    proxy = await asyncio.start_server(lambda r, w: handle_proxy_client(r, w, port), "127.0.0.1", proxy_port)
    log.info("Salesforce sandbox: API on https://127.0.0.1:%s, proxy on 127.0.0.1:%s", port, proxy_port)
    # uvicorn handles SIGTERM/SIGINT while it serves and re-raises the signal afterwards: ignore that echo,
    # the shutdown is already under way.
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda *_: None)
    try:
        await server.serve()
    finally:
        proxy.close()
        log.info("Salesforce sandbox stopped")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m csops.sandbox.salesforce", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proxy-port", type=int, required=True)
    arguments = parser.parse_args()
    database_url = os.environ.get(DATABASE_URL_VARIABLE)
    if not database_url:
        raise SystemExit(f"Set {DATABASE_URL_VARIABLE} to the sandbox org's Postgres URL.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    asyncio.run(serve(arguments.home, database_url, arguments.port, arguments.proxy_port))


if __name__ == "__main__":
    main()
