"""One error envelope for every failure: {"error": {"code", "message", "hint"}}. Routes raise
ApiError with a status; services raise the kinds of gateway.services.errors, and STATUS maps each
kind to its status here, once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.services.errors import (
    BadInput,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    RateLimited,
    ServiceError,
    TooLarge,
    TooMuchAtOnce,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


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

STATUS: dict[type[ServiceError], int] = {
    BadInput: 400,
    NotAuthenticated: 401,
    NotPermitted: 403,
    NotFound: 404,
    TooLarge: 413,
    TooMuchAtOnce: 422,
    RateLimited: 429,
    UpstreamError: 502,
    UpstreamUnavailable: 503,
    UpstreamTimeout: 504,
}
AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="gateway"'}


def status_of(exc: ServiceError) -> int:
    """The status of a service failure's kind (its nearest kind in STATUS)."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)


def as_api_error(exc: ApiError | ServiceError) -> ApiError:
    """The failure as the API answers it: status, code, message, hint and headers."""
    if isinstance(exc, ApiError):
        return exc
    headers = dict(AUTHENTICATE) if isinstance(exc, NotAuthenticated) else {}
    if exc.retry_after_seconds is not None:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return ApiError(status_of(exc), exc.code, exc.message, exc.hint, headers=headers)


def response_headers(exc: ApiError) -> dict[str, str]:
    """The headers of an error answer: its own, and a Retry-After on every 503."""
    headers = dict(exc.headers)
    if exc.status == 503 and not any(name.lower() == "retry-after" for name in headers):
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_SECONDS)
    return headers


# what every caller that turns failures into answers catches
Failure = (ApiError, ServiceError)


def envelope(code: str, message: str, hint: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "hint": hint}}


def _api_error(_: Request, failure: Exception) -> JSONResponse:
    assert isinstance(failure, ApiError | ServiceError)
    exc = as_api_error(failure)
    return JSONResponse(
        envelope(exc.code, exc.message, exc.hint), status_code=exc.status, headers=response_headers(exc)
    )


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
    app.add_exception_handler(ServiceError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
