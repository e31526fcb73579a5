"""Services raise kinds of failure without HTTP; gateway.errors maps each kind to its status once."""

from __future__ import annotations

import inspect

import pytest

from gateway.errors import STATUS, as_api_error, status_of
from gateway.services import errors as kinds
from gateway.services.loki import (
    LokiBadRequest,
    LokiBusy,
    LokiTimeout,
    LokiUnavailable,
    TooManyAtOneTimestamp,
)

ALL_KINDS = [
    cls for _, cls in inspect.getmembers(kinds, inspect.isclass)
    if issubclass(cls, kinds.ServiceError) and cls is not kinds.ServiceError
]


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.__name__)
def test_every_kind_has_a_status(kind: type[kinds.ServiceError]) -> None:
    assert 400 <= status_of(kind("code", "message")) < 600


def test_the_table_and_what_the_api_answers() -> None:
    assert set(STATUS) <= set(ALL_KINDS)
    assert status_of(kinds.CursorError("invalid_cursor", "m")) == 400  # through its parent BadInput
    refused = as_api_error(kinds.NotAuthenticated("missing_api_key", "m", "h"))
    assert (refused.status, refused.headers) == (401, {"WWW-Authenticate": 'Bearer realm="gateway"'})
    limited = as_api_error(kinds.RateLimited("rate_limited", "m", retry_after_seconds=7))
    assert (limited.status, limited.headers, limited.hint) == (429, {"Retry-After": "7"}, "")


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (LokiUnavailable("refused"), 503),
        (LokiTimeout(2.0), 504),
        (LokiBadRequest("parse error at line 1, col 2: syntax error"), 400),
        (LokiBusy("too many outstanding requests"), 503),
        (TooManyAtOneTimestamp(5000), 422),
    ],
)
def test_loki_failures_are_kinds_too(failure: kinds.ServiceError, status: int) -> None:
    assert as_api_error(failure).status == status
