"""Errors the sandbox answers with, in Salesforce's own shape: `[{"message": …, "errorCode": …}]`."""

from __future__ import annotations


class ApiError(Exception):
    """An API error: HTTP status, Salesforce error code, message, and the fields concerned (if any)."""

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict]:
        entry = {"message": self.message, "errorCode": self.error_code}
        if self.fields:
            entry["fields"] = self.fields
        return [entry]
