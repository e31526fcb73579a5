"""Structured JSON logs of the shipper and the gateway: one JSON object per line on stderr.

Fields: ts (RFC 3339, UTC), level, logger, message, plus every `extra={...}` field given to the
log call (e.g. event, source, reason). Exceptions are rendered into `exc`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's terminal copy of the message
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


HANDLER_NAME = "shipper-json"


LOKI_HANDLER_NAME = "own-logs-to-loki"


def configure_logging(
    level: str = "INFO", stream: TextIO | None = None, loki: logging.Handler | None = None
) -> logging.Handler:
    """Log through one JSON handler on the root logger, and to Loki too when `loki` is given
    (LOG_TO_LOKI; see shipper/loki_log_handler.py). Earlier handlers of ours are replaced."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    ours: list[logging.Handler] = [handler]
    if loki is not None:
        loki.set_name(LOKI_HANDLER_NAME)
        ours.append(loki)
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if h.get_name() in (HANDLER_NAME, LOKI_HANDLER_NAME)]:
        root.removeHandler(earlier)
        if earlier.get_name() == LOKI_HANDLER_NAME:
            earlier.close()
    root.handlers.extend(ours)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "google", "httpx", "httpcore", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler


def loki_handler_from(settings: Any, source: str) -> logging.Handler | None:
    """The handler when `settings.log_to_loki` is on (LOG_TO_LOKI), else None; Loki's URL, tenant
    and (the shipper's) credentials are the process's own."""
    if not settings.log_to_loki:
        return None
    from shipper.loki_log_handler import BoundedLokiQueueHandler  # requests & co. only when asked for

    username = getattr(settings, "loki_username", None)
    password = getattr(settings, "loki_password", None)
    bearer = getattr(settings, "loki_bearer_token", None)
    auth = (username, password.get_secret_value() if password else "") if username else None
    headers = {"Authorization": f"Bearer {bearer.get_secret_value()}"} if bearer else None
    return BoundedLokiQueueHandler(
        loki_url=settings.loki_url, source=source, service_name=source,
        tenant=settings.loki_tenant_id, headers=headers, auth=auth,
    )
