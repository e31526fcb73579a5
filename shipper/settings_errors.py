"""Configuration mistakes in the words of the person who made them: the environment variable they
set (`SHIPPER_INTERVAL_SECONDS`), not the pydantic field (`shipper_interval_seconds`), with the
value they gave unless it may be a secret. Shared by the shipper's and the gateway's CLIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

_SECRET_WORDS = ("key", "password", "token", "secret")


def http_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL with a host; else a ValueError saying so (the
    settings error names the variable)."""
    parsed = urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http(s) URL with a host, such as http://loki:3100")
    return url.strip()


def describe_settings_error(exc: ValidationError, *, environment: bool = True) -> str:
    """One line per problem: `NAME: what is wrong (got 'value')`; with environment=False the
    name is the path inside a file (`sources[0].prefix`)."""
    lines = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if environment:
            name = location[0].upper() if location else "CONFIGURATION"
            name += f"[{'.'.join(location[1:])}]" if location[1:] else ""
        else:
            name = ".".join(f"[{part}]" if part.isdigit() else part for part in location).replace(".[", "[")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        shown = "" if any(word in name.lower() for word in _SECRET_WORDS) else _given(error)
        lines.append(f"{name}: {message}{shown}")
    return "\n".join(lines)


def _given(error: Mapping[str, Any]) -> str:
    value = error.get("input")
    if value is None or isinstance(value, dict | list):
        return ""
    text = str(value)
    return f" (got {text[:80]!r})"
