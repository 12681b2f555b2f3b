"""The Slack sink's HTTP API: what an incoming webhook (`POST https://hooks.slack.com/services/T…/B…/…`) answers.

Like Slack it takes a JSON body (or a form field `payload` holding JSON) and answers 200 `ok` in plain
text, or a 4xx with Slack's plain-text error: 404 `no_service` (no webhook at that URL), 400
`invalid_payload` (not JSON / not an object), 400 `no_text` (neither text nor blocks nor attachments),
400 `invalid_blocks` (blocks not a list of objects with a `type`, or more than 50). `/sandbox/…` is the
sink's own: a health check, and failures to answer on purpose (a 429 with Retry-After, a 500) so
callers can be tested against them.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

log = logging.getLogger(__name__)
MAX_BLOCKS = 50
INDEX_ROWS = 500


class Channel:
    """The posts a webhook accepted: `posts.jsonl` (one JSON object per post) and `index.html`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.posts_jsonl = folder / "posts.jsonl"
        self.index_html = folder / "index.html"
        self._lock = threading.Lock()

    def posts(self) -> list[dict]:
        if not self.posts_jsonl.exists():
            return []
        return [json.loads(line) for line in self.posts_jsonl.read_text(encoding="utf-8").splitlines() if line]

    def store(self, channel: str, payload: dict) -> dict:
        post = {"received_at": datetime.now(UTC).isoformat(timespec="seconds"), "channel": channel,
                "text": payload.get("text"), "blocks": payload.get("blocks"), "payload": payload}
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.posts_jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(post, ensure_ascii=False) + "\n")
            self._write_html()
        return post

    def _write_html(self) -> None:
        items = "\n".join(
            f"<article><header>{html.escape(post['received_at'])} → {html.escape(post['channel'])}</header>"
            f"<pre>{html.escape(readable(post))}</pre></article>"
            for post in reversed(self.posts()[-INDEX_ROWS:]))
        self.index_html.write_text(
            "<!doctype html><meta charset=\"utf-8\"><title>Slack sink</title>"
            "<style>body{font-family:sans-serif}article{border-bottom:1px solid #ccc;padding:6px 0}"
            "header{color:#555;font-size:90%}pre{white-space:pre-wrap;font-family:inherit}</style>"
            "<h1>Posts to the local Slack webhook</h1><p>Newest first; all of them in posts.jsonl.</p>\n"
            f"{items}\n", encoding="utf-8")


def readable(post: dict) -> str:
    """A post as a person reads it in Slack: the text of its blocks (header, sections, context), else its text."""
    lines = []
    for block in post.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            lines.append(text.get("text", ""))
        for part in block.get("fields") or []:
            lines.append(part.get("text", ""))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                value = element["text"]
                lines.append(value.get("text", "") if isinstance(value, dict) else value)
        if block.get("type") == "divider":
            lines.append("———")
    return "\n".join(lines) if lines else (post.get("text") or "")


def payload_error(payload: object) -> str | None:
    """Slack's error code for a payload it would refuse, or None."""
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS
                               or not all(isinstance(block, dict) and block.get("type") for block in blocks)):
        return "invalid_blocks"
    if not (payload.get("text") or blocks or payload.get("attachments")):
        return "no_text"
    return None


def create_app(folder: Path, credentials: dict) -> FastAPI:
    app = FastAPI(title="Slack sink", docs_url=None, redoc_url=None, openapi_url=None)
    channel = Channel(folder)
    failures: list[tuple[int, str]] = []  # answers queued by /sandbox/fail, given before any check

    def error(status: int, code: str, **headers: str) -> PlainTextResponse:
        return PlainTextResponse(code, status_code=status, headers=headers)

    @app.post("/services/{path:path}")
    async def incoming_webhook(path: str, request: Request) -> PlainTextResponse:
        if failures:
            status, code = failures.pop(0)
            log.info("answering %d %s on purpose", status, code)
            return error(status, code, **({"Retry-After": "1"} if status == 429 else {}))
        if path.strip("/") != credentials["webhook_path"]:
            return error(404, "no_service")
        raw = await request.body()
        try:
            if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                raw = parse_qs(raw.decode())["payload"][0].encode()
            payload = json.loads(raw)
        except (ValueError, KeyError, UnicodeDecodeError):
            return error(400, "invalid_payload")
        if code := payload_error(payload):
            log.info("refused a post: %s", code)
            return error(400, code)
        channel.store(credentials["channel"], payload)
        return PlainTextResponse("ok")

    @app.get("/sandbox/health")
    async def health() -> dict:
        return {"status": "ok", "posts": len(channel.posts())}

    @app.post("/sandbox/fail")
    async def fail(request: Request) -> dict:
        """Answer the next `count` posts with `status` (429 `rate_limited` or 500 `internal_error`)."""
        body = await request.json()
        status = int(body.get("status", 500))
        failures.extend([(status, "rate_limited" if status == 429 else "internal_error")] * int(body.get("count", 1)))
        return {"queued": len(failures)}

    return app
