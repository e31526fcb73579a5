"""The process's own logs into Loki (`LOG_TO_LOKI=true`), for the shipper and the gateway alike.

Built on python-logging-loki's queue handler (the maintained fork, `python-logging-loki-v2`, which
stamps an entry with its record's time and can send a tenant header). What it lacks for a process
that must never stall on its own logging is added here:

- a bounded queue: when Loki is slow or down, records past `max_queued` are dropped and counted
  (`dropped`), never blocking the caller;
- a timeout on every push (the library's requests session has none: a blackholed Loki would hold
  its thread for ever) and a shutdown that waits at most `stop_timeout` seconds;
- DESIGN.md's labels only (`source`, `service_name`, `level` in its vocabulary), no logger name
  or caller-supplied tags as labels;
- no feedback loop: records of the HTTP stack that carries the logs are not shipped.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from logging.handlers import QueueListener
from typing import Any

import requests
from logging_loki import LokiQueueHandler
from logging_loki.emitter import LokiEmitterV2
from logging_loki.handlers import LokiHandler

from shipper.logs import JsonFormatter

PUSH_PATH = "/loki/api/v1/push"
DEFAULT_MAX_QUEUED = 10_000
DEFAULT_PUSH_TIMEOUT_SECONDS = 5.0
DEFAULT_STOP_TIMEOUT_SECONDS = 2.0
# Python level names -> DESIGN.md's `level` values
LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error", "critical": "critical"}
_OWN_TRANSPORT_LOGGERS = ("urllib3", "requests", "logging_loki")


class _TimeoutSession(requests.Session):
    timeout_seconds = DEFAULT_PUSH_TIMEOUT_SECONDS

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_seconds)
        return super().request(*args, **kwargs)


class _DesignLabelsEmitter(LokiEmitterV2):  # type: ignore[misc]
    session_class = _TimeoutSession

    def build_tags(self, record: logging.LogRecord) -> dict[str, Any]:
        return {**self.tags, "level": LEVELS.get(record.levelname.lower(), "unknown")}


class _DesignLabelsHandler(LokiHandler):  # type: ignore[misc]
    emitters = {"2": _DesignLabelsEmitter}


class _NotOwnTransport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_OWN_TRANSPORT_LOGGERS)


class BoundedLokiQueueHandler(LokiQueueHandler):  # type: ignore[misc]
    """LokiQueueHandler with a bounded queue, timed pushes and a bounded stop."""

    def __init__(
        self,
        *,
        loki_url: str,
        source: str,
        service_name: str,
        tenant: str | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT_SECONDS,
    ) -> None:
        logging.Handler.__init__(self)  # LokiQueueHandler's own __init__ would start an unbounded listener
        self.queue: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=max_queued)
        self.listener = None
        self.dropped = 0
        self.stop_timeout = stop_timeout
        all_headers = dict(headers or {})
        if tenant:
            all_headers["X-Scope-OrgID"] = tenant
        self.handler = _DesignLabelsHandler(
            url=loki_url.rstrip("/") + PUSH_PATH,
            tags={"source": source, "service_name": service_name},
            auth=auth,
            version="2",
            headers=all_headers,
        )
        self.handler.setFormatter(JsonFormatter())
        self.addFilter(_NotOwnTransport())
        self.listener = QueueListener(self.queue, self.handler)
        self.listener.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Stop within `stop_timeout`: what is still queued then is dropped (the thread is a daemon)."""
        listener, self.listener = self.listener, None
        if listener is not None and listener._thread is not None:
            with contextlib.suppress(queue.Full):  # then the daemon thread just ends with the process
                self.queue.put_nowait(listener._sentinel)  # type: ignore[attr-defined]
            listener._thread.join(self.stop_timeout)
            listener._thread = None
        self.handler.emitter.close()
        logging.Handler.close(self)

