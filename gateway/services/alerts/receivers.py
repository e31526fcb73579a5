"""Forwarding stored alerts to receivers: a generic webhook and a Slack-compatible one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

from gateway.services.alerts.models import Json, StoredAlert, WebhookPayload, forwarded_entry
from gateway.services.bounded_http import request_within

log = logging.getLogger(__name__)

# Alert labels that are also stream labels (DESIGN.md); everything else never reaches LogQL.
STREAM_LABELS = ("source", "service_name", "bucket", "prefix", "collection", "namespace", "pod", "container")
FORWARD_ATTEMPTS = 3
FORWARD_BACKOFF_SECONDS = 0.5
FORWARD_TIMEOUT_SECONDS = 5.0


class Receiver(Protocol):
    name: str

    def body(self, payload: WebhookPayload, entries: list[StoredAlert]) -> Json: ...

    @property
    def url(self) -> str: ...


class GenericWebhookReceiver:
    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def body(self, payload: WebhookPayload, entries: list[StoredAlert]) -> Json:
        return {
            "source": "loki-gateway",
            "status": payload.status,
            "receiver": payload.receiver,
            "groupKey": payload.groupKey,
            "groupLabels": payload.groupLabels,
            "externalURL": payload.externalURL,
            "alerts": [forwarded_entry(entry) for entry in entries],
        }


class SlackReceiver:
    """A Slack-compatible incoming webhook (https://api.slack.com/messaging/webhooks): `text`
    is the fallback and the whole message for simple compatible servers."""

    name = "slack"

    def __init__(self, url: str) -> None:
        self.url = url

    def body(self, payload: WebhookPayload, entries: list[StoredAlert]) -> Json:
        lines = []
        for entry in entries:
            name = entry.labels.get("alertname", "alert")
            where = ", ".join(f"{k}={entry.labels[k]}" for k in STREAM_LABELS if k in entry.labels)
            icon = ":red_circle:" if entry.status == "firing" else ":large_green_circle:"
            lines.append(f"{icon} *{name}* ({entry.status}) {where}".rstrip())
            about = entry.annotations.get("summary") or entry.annotations.get("description")
            if about:
                lines.append(f"> {about}")
            summary = entry.context.summary if entry.context else None
            if summary:
                lines.append(f"```{summary[:1500]}```")
        return {"text": "\n".join(lines)[:3900]}


class Forwarder:
    def __init__(
        self,
        http: httpx.AsyncClient,
        receivers: list[Receiver],
        *,
        attempts: int = FORWARD_ATTEMPTS,
        backoff_seconds: float = FORWARD_BACKOFF_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._receivers = receivers
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._sleep = sleep

    @property
    def configured(self) -> bool:
        return bool(self._receivers)

    async def _send(self, receiver: Receiver, body: Json) -> str:
        outcome = "not sent"
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                response = await request_within(
                    self._http, "POST", receiver.url, FORWARD_TIMEOUT_SECONDS, json=body
                )
            except httpx.HTTPError as exc:
                outcome = f"failed: {type(exc).__name__}"
                continue
            if response.is_success:
                return "ok"
            outcome = f"failed: HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver rejects this body; resending will not help
        # never log the URL: incoming-webhook URLs are credentials
        log.warning("forwarding alerts to the %s receiver %s", receiver.name, outcome)
        return outcome

    async def forward(self, payload: WebhookPayload, entries: list[StoredAlert]) -> dict[str, str]:
        outcomes = await asyncio.gather(
            *(self._send(receiver, receiver.body(payload, entries)) for receiver in self._receivers)
        )
        return {receiver.name: outcome for receiver, outcome in zip(self._receivers, outcomes, strict=True)}
