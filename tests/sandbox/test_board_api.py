"""The board sandbox API over real HTTP: auth, paging, filters, codes, response groups, formats and limits."""

from __future__ import annotations

import re
from datetime import datetime

import psycopg
import pytest
import requests

from csops.sandbox.board.schema import INVOICE_STATUS_CODES, ORDER_CONFIRMED, ORDER_LOST
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


def test_projects_come_newest_first_and_leave_out_lost_unless_asked(board, api):
    projects = api("/v1/projects", {"per_page": 100}).json()
    ids = [row["id"] for row in projects]
    assert ids == sorted(ids, reverse=True)
    with psycopg.connect(board.database_url, autocommit=True) as connection:
        lost = connection.execute("select min(id) from board.projects").fetchone()[0]
        connection.execute("update board.projects set order_status = %s where id = %s", (ORDER_LOST, lost))
    try:
        without = int(api("/v1/projects").headers["X-Total-Count"])
        with_lost = api("/v1/projects", {"include_lost_flg": 1, "order_status_in[]": "9"})
        assert [row["id"] for row in with_lost.json()] == [lost] and row_status(with_lost.json()[0]) == (9, "失注")
        assert int(api("/v1/projects", {"include_lost_flg": 1}).headers["X-Total-Count"]) == without + 1
    finally:
        with psycopg.connect(board.database_url, autocommit=True) as connection:
            connection.execute("update board.projects set order_status = %s where id = %s", (ORDER_CONFIRMED, lost))


def row_status(row: dict) -> tuple:
    return row["order_status"], row["order_status_name"]


def test_per_page_above_100_and_unknown_filters_are_422(api):
    response = api("/v1/invoices", {"per_page": 101})
    assert response.status_code == 422 and response.json()["errors"]
    response = api("/v1/invoices", {"colour_eq": "red"})
    assert response.status_code == 422 and "colour_eq" in response.json()["errors"][0]
    response = api("/v1/invoices", {"client_id_eq": 1})  # board filters invoices by project_client_id_eq
    assert response.status_code == 422 and "project_client_id_eq" in response.json()["errors"][0]
    assert api("/v1/clients", {"response_group": "medium"}).status_code == 422  # clients: small or large


def test_board_filters(api):
    every = api("/v1/invoices", {"per_page": 100, "page": 1}).json()
    middle = sorted(row["updated_at"] for row in every)[len(every) // 2]
    recent = api("/v1/invoices", {"updated_at_gteq": middle, "per_page": 100}).json()
    assert recent and all(datetime.fromisoformat(r["updated_at"]) >= datetime.fromisoformat(middle) for r in recent)
    assert len(recent) < int(api("/v1/invoices").headers["X-Total-Count"])
    clients = sorted({row["client"]["id"] for row in every})[:2]
    chosen = api("/v1/invoices", {"project_client_id_eq": clients[0], "per_page": 100}).json()
    assert chosen and {row["client"]["id"] for row in chosen} == {clients[0]}
    for statuses in ([("invoice_status_in[]", "2"), ("invoice_status_in[]", "3")], [("invoice_status_in[]", "2,3")]):
        sent_or_paid = api("/v1/invoices", [*statuses, ("per_page", "100")]).json()
        assert sent_or_paid and {row["invoice_status"] for row in sent_or_paid} <= {2, 3}
    day = min(row["invoice_date"] for row in every)
    on_day = api("/v1/invoices", {"invoice_date_gteq": day, "invoice_date_lteq": day, "per_page": 100}).json()
    assert on_day and {row["invoice_date"] for row in on_day} == {day}
    project = api("/v1/projects").json()[0]
    assert [row["id"] for row in api("/v1/projects", {"project_no_eq": project["project_no"]}).json()] == [
        project["id"]]
    client = api("/v1/clients").json()[0]
    assert [row["id"] for row in api("/v1/clients", {"custom_no_eq": client["custom_no"]}).json()] == [client["id"]]


def test_codes_are_boards(board, api):
    """Stored codes are shown as board's: 受注済 5 for signed and ended contracts, 回収不能 9."""
    with psycopg.connect(board.database_url) as connection:
        stored = dict(connection.execute("select invoice_status, count(*) from board.invoices group by 1"))
    shown: dict[int, int] = {}
    for status in (1, 2, 3, 9):
        count = int(api("/v1/invoices", {"invoice_status_in[]": status}).headers["X-Total-Count"])
        if count:
            shown[status] = count
    assert shown == {INVOICE_STATUS_CODES[code]: count for code, count in stored.items()}
    projects = api("/v1/projects", {"per_page": 100, "response_group": "large"}).json()
    assert {row["order_status"] for row in projects} <= {5} and {row["order_status_name"] for row in projects} == {
        "受注済"}
    assert {row["invoice_timing_kbn_name"] for row in projects} <= {"一括請求", "定期請求"}


def test_response_groups_and_formats(api):
    small = api("/v1/invoices", {"per_page": 5}).json()
    assert all("invoice" not in row and "subtotal" not in row for row in small)
    documents = api("/v1/invoices", {"per_page": 5, "response_group": "invoice"}).json()
    for row in documents:
        line = row["invoice"]["details"][0]
        assert set(line) == {"no", "description", "quantity", "unit", "unit_price", "price", "tax_rate"}
        assert line["no"] == 1 and line["tax_rate"] == "10.0" and AMOUNT.match(line["price"])
        assert all(AMOUNT.match(row[name]) for name in ("total", "tax"))
        assert sum(float(d["price"]) for d in row["invoice"]["details"]) == float(row["total"])  # total excludes tax
        assert set(row["client"]) == {"id", "name", "name_disp", "custom_no"} and isinstance(row["project_no"], int)
        assert TIMESTAMP.match(row["created_at"]) and TIMESTAMP.match(row["updated_at"])
        assert re.match(r"^\d{4}-\d\d-\d\d$", row["payment_limit_date"]) and isinstance(row["id"], int)
    project = api("/v1/projects", {"per_page": 1}).json()[0]
    assert "contract_start_date" not in project and {"order_status", "order_status_name", "client"} <= set(project)
    large = api(f"/v1/projects/{project['id']}", {"response_group": "large"}).json()
    assert {"invoice_timing_kbn", "contract_start_date", "contract_end_date", "ordered_date"} <= set(large)
    client = api("/v1/clients", {"per_page": 1}).json()[0]
    assert {"custom_no", "address1", "pref", "title"} <= set(client) and "management_no" not in client
    assert api("/v1/projects/1").status_code == 404
    assert api(f"/v1/invoices/{documents[0]['id']}").status_code in (404, 405)  # board has no single invoice read


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


def test_queued_faults_answer_503_or_cut_the_connection_then_the_api_answers(board, api):
    board.admin.add_fault("unavailable")
    board.admin.add_fault("drop")
    try:
        assert api("/v1/clients").status_code == 503
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            api("/v1/clients")
        assert api("/v1/clients").status_code == 200
    finally:
        board.admin.clear_faults()


def test_the_total_count_header_can_be_left_out(board, api):
    board.admin.set_total_count_header(False)
    try:
        response = api("/v1/invoices")
        assert response.status_code == 200 and "X-Total-Count" not in response.headers
        assert response.headers["X-Page"] == "1"
    finally:
        board.admin.set_total_count_header(True)
    assert "X-Total-Count" in api("/v1/invoices").headers
