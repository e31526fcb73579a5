"""One error envelope for every failure: {"error": {"code", "message", "hint"}}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """Raise anywhere in the gateway; the handler turns it into the envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.headers = headers or {}


# A 503 says "try again later"; clients and Alertmanager need to know when.
DEFAULT_RETRY_AFTER_SECONDS = 5


def envelope(code: str, message: str, hint: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "hint": hint}}


def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = dict(exc.headers)
    if exc.status == 503 and not any(name.lower() == "retry-after" for name in headers):
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_SECONDS)
    return JSONResponse(envelope(exc.code, exc.message, exc.hint), status_code=exc.status, headers=headers)


def describe_problems(errors: Sequence[Any]) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in errors
    )


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        envelope(
            "invalid_request", describe_problems(exc.errors()), "check the parameter names, types and ranges"
        ),
        status_code=422,
    )


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        envelope(code, str(exc.detail), "see GET /docs for the available routes"),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        envelope("internal_error", "unexpected error", "retry; if it persists, check gateway logs"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
