"""The board sandbox API over real HTTP: auth, paging, filters, response groups, formats and limits."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import requests

from csops.sandbox.board.server import BoardSandbox
from csops.sandbox.board.store import DEFAULT_DAILY_LIMIT
from tests.board_fixtures import running_board

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00$")
AMOUNT = re.compile(r"^-?\d+\.\d$")


@pytest.fixture(scope="module")
def board(postgres, tmp_path_factory) -> BoardSandbox:
    with running_board(postgres, tmp_path_factory.mktemp("board"), "board_api") as sandbox:
        yield sandbox


@pytest.fixture
def api(board):
    """A quiet sandbox (nothing used, default budget, per-second limit off) and a GET with the full token."""
    board.admin.set_daily_limit(DEFAULT_DAILY_LIMIT)
    board.admin.set_per_second_limit(False)
    board.admin.reset_usage()

    def get(path: str, params=None, headers=None) -> requests.Response:
        return requests.get(f"{board.base_url}{path}", params=params, headers=headers or board.headers(), timeout=10)

    return get


def test_credentials_are_private(board):
    assert (board.home / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_missing_or_unknown_key_or_token_is_401(board, api):
    values = board.credentials()
    for headers in ({"Authorization": f"Bearer {values['token']}"},
                    {"x-api-key": values["api_key"]},
                    {"x-api-key": values["api_key"], "Authorization": "Bearer not-a-token"},
                    {"x-api-key": "wrong", "Authorization": f"Bearer {values['token']}"}):
        response = api("/v1/clients", headers=headers)
        assert response.status_code == 401, headers.keys()
        assert "message" in response.json()


def test_restricted_token_may_read_clients_but_not_invoices(board, api):
    restricted = board.headers(board.credentials()["restricted_token"])
    assert api("/v1/clients", headers=restricted).status_code == 200
    response = api("/v1/invoices", headers=restricted)
    assert response.status_code == 403 and "invoices" in response.json()["message"]


def test_pages_cover_every_row_once_in_id_order(api):
    first = api("/v1/invoices", {"per_page": 25})
    total = int(first.headers["X-Total-Count"])
    assert first.headers["X-Page"] == "1" and first.headers["X-Per-Page"] == "25" and total > 50
    ids = []
    for page in range(1, total // 25 + 2):
        response = api("/v1/invoices", {"per_page": 25, "page": page})
        assert response.headers["X-Page"] == str(page)
        ids.extend(row["id"] for row in response.json())
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == total
    assert len(api("/v1/invoices").json()) == 10  # the default page size


def test_per_page_above_100_and_unknown_filters_are_422(api):
    response = api("/v1/invoices", {"per_page": 101})
    assert response.status_code == 422 and response.json()["errors"]
    response = api("/v1/invoices", {"colour_eq": "red"})
    assert response.status_code == 422 and "colour_eq" in response.json()["errors"][0]


def test_ransack_filters(api):
    every = api("/v1/invoices", {"per_page": 100, "page": 1}).json()
    middle = sorted(row["updated_at"] for row in every)[len(every) // 2]
    recent = api("/v1/invoices", {"updated_at_gteq": middle, "per_page": 100}).json()
    assert recent and all(datetime.fromisoformat(r["updated_at"]) >= datetime.fromisoformat(middle) for r in recent)
    assert len(recent) < int(api("/v1/invoices").headers["X-Total-Count"])
    clients = sorted({row["client_id"] for row in every})[:2]
    chosen = api("/v1/invoices", [("client_id_in[]", clients[0]), ("client_id_in[]", clients[1]),
                                  ("per_page", 100)]).json()
    assert chosen and {row["client_id"] for row in chosen} == set(clients)
    paid = api("/v1/invoices", {"invoice_status_eq": 3, "per_page": 100}).json()
    assert paid and all(row["invoice_status"] == 3 for row in paid)


def test_response_groups_and_formats(api):
    medium = api("/v1/invoices", {"per_page": 5}).json()
    assert all("details" not in row for row in medium)
    large = api("/v1/invoices", {"per_page": 5, "response_group": "large"}).json()
    for row in large:
        assert row["details"] and AMOUNT.match(row["details"][0]["amount"])
        assert all(AMOUNT.match(row[name]) for name in ("subtotal", "tax", "total"))
        assert TIMESTAMP.match(row["created_at"]) and TIMESTAMP.match(row["updated_at"])
        assert re.match(r"^\d{4}-\d\d-\d\d$", row["invoice_date"]) and isinstance(row["id"], int)
    small = api("/v1/invoices", {"per_page": 5, "response_group": "small"}).json()
    assert "subtotal" not in small[0] and "total" in small[0]
    one = api(f"/v1/invoices/{large[0]['id']}", {"response_group": "large"}).json()
    assert one == large[0]
    assert api("/v1/invoices/1").status_code == 404


def test_more_than_three_calls_a_second_is_429(board, api):
    board.admin.set_per_second_limit(True)
    responses = [api("/v1/clients") for _ in range(6)]
    assert [r.status_code for r in responses[:3]] == [200, 200, 200]
    refused = [r for r in responses[3:] if r.status_code == 429]
    assert refused and refused[0].json() == {"message": "Too Many Requests"}


def test_daily_budget_is_429_limit_exceeded_and_persisted(board, api):
    board.admin.set_daily_limit(3)
    assert [api("/v1/clients").status_code for _ in range(3)] == [200, 200, 200]
    response = api("/v1/clients")
    assert response.status_code == 429 and response.json() == {"message": "Limit Exceeded"}
    assert board.admin.usage()["used"] == 3
    board.stop()
    board.start()
    assert api("/v1/clients").status_code == 429  # the budget survives a restart
