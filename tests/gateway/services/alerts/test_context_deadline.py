"""An alert's log context has one deadline, waiting for a read slot included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.services.alerts import processor
from gateway.services.alerts.models import ContextScope, WebhookAlert
from gateway.services.alerts.processor import AlertProcessor
from gateway.services.alerts.store import MemoryAlertStore


async def test_a_context_read_that_never_answers_is_given_up_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor, "CONTEXT_DEADLINE_SECONDS", 0.2)

    async def never(selector: str, start_ns: int, end_ns: int, tenant: str | None) -> dict[str, Any]:
        await asyncio.Event().wait()  # a model endpoint, or Loki, that never answers
        return {}

    alerts = AlertProcessor(MemoryAlertStore(max_entries=10), events=None,  # type: ignore[arg-type]
                            forwarder=None, summarize_context=never)  # type: ignore[arg-type]
    alert = WebhookAlert(status="firing", labels={"source": "gcs", "alertname": "Errors"},
                         startsAt=datetime(2026, 12, 1, tzinfo=UTC), fingerprint="f1")
    # two reads hold both slots forever; the third waits for one: all three end at the deadline
    contexts = await asyncio.wait_for(
        asyncio.gather(*(alerts._context(alert, ContextScope()) for _ in range(3))), timeout=5)
    assert [context.reason for context in contexts] == ["log context not read within 0.2 s"] * 3
