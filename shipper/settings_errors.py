"""Settings in the words of the person who sets them, for the shipper's and the gateway's CLIs:
mistakes name the environment variable (`SHIPPER_INTERVAL_SECONDS`, not the pydantic field
`shipper_interval_seconds`) with the value given unless it may be a secret; `--help` lists the
variables; `--version` says which release runs."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings

_SECRET_WORDS = ("key", "password", "token", "secret")
DISTRIBUTION = "loki-gateway"


def http_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL with a host; else a ValueError saying so (the
    settings error names the variable)."""
    parsed = urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http(s) URL with a host, such as http://loki:3100")
    return url.strip()


def environment_help(settings_class: type[BaseSettings]) -> str:
    """The `--help` epilog: every variable the settings class reads, and where they are described."""
    names = ", ".join(name.upper() for name in settings_class.model_fields)
    return f"environment variables (see docs/settings.md): {names}"


def program_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


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
