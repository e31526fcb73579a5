"""What can go wrong in the gateway's services, by kind, without HTTP: a service says what went
wrong (`code`, `message`) and what to do about it (`hint`); gateway.errors maps each kind to its
status in one table, for REST answers and MCP tool errors alike (as llm.ModelError does)."""

from __future__ import annotations


class ServiceError(Exception):
    """A failure a service foresees. Raise one of the kinds below, never this class itself."""

    def __init__(
        self, code: str, message: str, hint: str = "", *, retry_after_seconds: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after_seconds = retry_after_seconds


class BadInput(ServiceError):
    """The caller's input is wrong: a parameter, a filter, a path."""


class QueryError(BadInput):
    """The query, its time range or a bound on its answer is wrong."""


class CursorError(BadInput):
    """The cursor is malformed or belongs to another query."""


class NotAuthenticated(ServiceError):
    """No key, an unknown key or an expired key."""


class NotPermitted(ServiceError):
    """The key may not do this (its scopes or label policy)."""


class NotFound(ServiceError):
    """What was asked for does not exist (a service, a proxied path)."""


class TooLarge(ServiceError):
    """The query would read, or the body holds, more than a limit allows."""


class TooMuchAtOnce(ServiceError):
    """The request is valid but cannot be served as asked (e.g. too many entries at one instant)."""


class RateLimited(ServiceError):
    """The caller asks too often or holds too much at once; `retry_after_seconds` says when to retry."""


class UpstreamError(ServiceError):
    """Loki or a proxied service answered with an error."""


class UpstreamUnavailable(ServiceError):
    """Loki, a proxied service or a store cannot be reached or is overloaded right now."""


class UpstreamTimeout(ServiceError):
    """Loki or a proxied service did not answer in time."""
