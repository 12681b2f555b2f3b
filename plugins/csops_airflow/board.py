"""The board billing API as an Airflow hook: the `board_default` connection turned into a paced client.

The connection holds the API's base URL as its host (`https://api.the-board.jp`, or the local sandbox's
`http://127.0.0.1:<port>`), the token as its password and the account's API key in the extras
(`{"api_key": "..."}`): both are secrets, masked in task logs, never in code.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from csops.extract.board import BoardClient


class BoardHook(BaseHook):
    conn_name_attr = "board_conn_id"
    default_conn_name = "board_default"
    conn_type = "http"
    hook_name = "board"

    def __init__(self, board_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.board_conn_id = board_conn_id

    def get_conn(self) -> BoardClient:
        connection = self.get_connection(self.board_conn_id)
        api_key = connection.extra_dejson.get("api_key")
        missing = [name for name, value in (("host (the API's base URL)", connection.host),
                                            ("password (the API token)", connection.password),
                                            ("extra api_key", api_key)) if not value]
        if missing:
            raise ValueError(f"Airflow connection {self.board_conn_id!r} lacks {', '.join(missing)}; board needs "
                             f"the base URL, the token and the account's API key")
        base_url = connection.host if "://" in connection.host else f"https://{connection.host}"
        if connection.port:
            base_url = f"{base_url.rstrip('/')}:{connection.port}"
        return BoardClient(base_url, api_key=api_key, token=connection.password)
