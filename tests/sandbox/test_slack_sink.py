"""The Slack sink: answers like a Slack incoming webhook and keeps every post it accepts."""

from __future__ import annotations

import json

import requests

from csops.sandbox.slack.server import SlackSink


def webhook_url(sink: SlackSink) -> str:
    connection = sink.airflow_connection()
    return f"{connection['host']}/{connection['password']}"


def test_a_post_is_answered_ok_and_kept(slack_sink: SlackSink):
    before = len(slack_sink.channel.posts())
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "ステータス変化"}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "*株式会社テスト* Green → Red"}}]
    response = requests.post(webhook_url(slack_sink), json={"text": "ステータス変化: 1社", "blocks": blocks}, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    posts = slack_sink.channel.posts()
    assert len(posts) == before + 1
    assert posts[-1]["text"] == "ステータス変化: 1社" and posts[-1]["blocks"] == blocks
    assert posts[-1]["channel"] == "#cs-alerts"
    page = (slack_sink.home / "index.html").read_text(encoding="utf-8")
    assert "*株式会社テスト* Green → Red" in page  # the blocks' text, as a person reads the channel
    assert "株式会社テスト" in (slack_sink.home / "posts.jsonl").read_text(encoding="utf-8")


def test_a_form_encoded_payload_is_accepted_as_slack_does(slack_sink: SlackSink):
    response = requests.post(webhook_url(slack_sink), data={"payload": json.dumps({"text": "form post"})}, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    assert slack_sink.channel.posts()[-1]["text"] == "form post"


def test_refusals_answer_slacks_plain_text_errors_and_keep_nothing(slack_sink: SlackSink):
    before = len(slack_sink.channel.posts())
    url = webhook_url(slack_sink)
    cases = [
        (url.rsplit("/", 1)[0] + "/wrong-secret", {"json": {"text": "x"}}, 404, "no_service"),
        (url, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_payload"),
        (url, {"json": ["a", "list"]}, 400, "invalid_payload"),
        (url, {"json": {"text": ""}}, 400, "no_text"),
        (url, {"json": {"username": "bot"}}, 400, "no_text"),
        (url, {"json": {"text": "x", "blocks": [{"text": "no type"}]}}, 400, "invalid_blocks"),
        (url, {"json": {"text": "x", "blocks": [{"type": "divider"}] * 51}}, 400, "invalid_blocks"),
    ]
    for target, arguments, status, body in cases:
        response = requests.post(target, timeout=5, **arguments)
        assert (response.status_code, response.text) == (status, body), arguments
        assert response.headers["content-type"].startswith("text/plain")
    assert len(slack_sink.channel.posts()) == before


def test_failures_on_purpose_come_first_then_posts_go_through(slack_sink: SlackSink):
    slack_sink.fail_next(429)
    slack_sink.fail_next(500)
    url = webhook_url(slack_sink)
    limited = requests.post(url, json={"text": "a"}, timeout=5)
    assert (limited.status_code, limited.text, limited.headers["Retry-After"]) == (429, "rate_limited", "1")
    assert requests.post(url, json={"text": "b"}, timeout=5).status_code == 500
    assert requests.post(url, json={"text": "c"}, timeout=5).status_code == 200
    assert slack_sink.channel.posts()[-1]["text"] == "c"
