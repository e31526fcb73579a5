"""The error a client's query, time or filter earns: a 400 with a hint saying how to fix it."""

from __future__ import annotations

from gateway.errors import ApiError


class LogQLError(ApiError):
    def __init__(self, message: str, hint: str, code: str = "invalid_query", status: int = 400) -> None:
        super().__init__(status, code, message, hint)
