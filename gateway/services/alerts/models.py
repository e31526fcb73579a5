"""Alertmanager's v4 webhook payload, and the entry stored per fingerprint (firing -> resolved
updates one entry). `StoredAlert.dump()` is the JSON kept in memory or Redis and shown by GET
/api/monitoring/alerts; `load()` reads it back, also as written by earlier gateway versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from gateway.services.times import SupportedDatetime, iso_z, now_z

AlertStatus = Literal["firing", "resolved"]
# a JSON object as read or written at the store's and the receivers' edge; typed inside
Json = dict[str, Any]
HIDDEN_CONTEXT = "read under another key's label policy or tenant"


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: SupportedDatetime
    endsAt: SupportedDatetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)


class WebhookPayload(BaseModel):
    """https://prometheus.io/docs/alerting/latest/configuration/#webhook_config (version 4)."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: AlertStatus
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=1000)


def iso(value: datetime | None) -> str | None:
    if value is None or value.year <= 1:  # Alertmanager sends 0001-01-01T00:00:00Z for "not set"
        return None
    return iso_z(value)


@dataclass(frozen=True)
class ContextScope:
    """Whose view an alert's log context is read with: the label policy and Loki tenant of the key
    that posted the notification, as for any query of that key."""

    label_policy: str | None = None
    tenant: str | None = None

    def dump(self) -> dict[str, str | None]:
        return {"label_policy": self.label_policy, "tenant": self.tenant}

    @classmethod
    def load(cls, raw: Mapping[str, str | None]) -> ContextScope:
        return cls(raw.get("label_policy"), raw.get("tenant"))

    def readable_by(self, label_policy: str | None, tenant: str | None) -> bool:
        """A reader sees the context when it was read within the reader's own view: the reader
        has no policy or this same one, and the same tenant."""
        return label_policy in (None, self.label_policy) and tenant == self.tenant


@dataclass(frozen=True)
class TemplateRow:
    """One of an alert context's top log templates (a summary's evidence row, shortened)."""

    id: str
    template: str
    count: int
    change: str

    def dump(self) -> Json:
        return {"id": self.id, "template": self.template, "count": self.count, "change": self.change}

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> TemplateRow:
        return cls(str(raw["id"]), str(raw["template"]), int(raw["count"]), str(raw["change"]))


@dataclass(frozen=True)
class AlertContext:
    """An alert's log context: the summary of its streams around startsAt, or (`reason` set) why
    there is none. The two have different JSON shapes, kept as they always were."""

    selector: str | None
    summary: str | None = None
    reason: str | None = None
    model: str | None = None
    lines_read: int | None = None
    window: Mapping[str, str | int] | None = None
    top_templates: tuple[TemplateRow, ...] = ()

    @classmethod
    def missing(cls, selector: str | None, reason: str) -> AlertContext:
        return cls(selector, reason=reason)

    def dump(self) -> Json:
        if self.reason is not None:
            return {"selector": self.selector, "summary": self.summary, "reason": self.reason}
        return {
            "selector": self.selector,
            "summary": self.summary,
            "model": self.model,
            "lines_read": self.lines_read,
            "window": None if self.window is None else dict(self.window),
            "top_templates": [row.dump() for row in self.top_templates],
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> AlertContext:
        if "reason" in raw:
            return cls(raw.get("selector"), raw.get("summary"), reason=raw["reason"])
        window = raw.get("window")
        return cls(
            raw.get("selector"),
            raw.get("summary"),
            model=raw.get("model"),
            lines_read=raw.get("lines_read"),
            window=None if window is None else dict(window),
            top_templates=tuple(TemplateRow.load(row) for row in raw.get("top_templates") or ()),
        )


@dataclass(frozen=True)
class StoredAlert:
    """The entry kept per fingerprint. `context_scope` (the posting key's policy and tenant) is the
    store's own: never shown (`visible_entry`), never forwarded (`forwarded_entry`)."""

    fingerprint: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str | None
    ends_at: str | None
    generator_url: str
    receiver: str
    group_key: str
    external_url: str
    first_received: str
    last_received: str
    notifications: int
    context: AlertContext | None = None
    forwarded: Mapping[str, str] = field(default_factory=dict)
    context_scope: ContextScope | None = None

    @classmethod
    def received(
        cls, alert: WebhookAlert, payload: WebhookPayload, previous: StoredAlert | None
    ) -> StoredAlert:
        """The entry after this notification: `previous` (same fingerprint) updated."""
        now = now_z()
        return cls(
            fingerprint=alert.fingerprint,
            status=alert.status,
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=iso(alert.startsAt),
            ends_at=iso(alert.endsAt) if alert.status == "resolved" else None,
            generator_url=alert.generatorURL,
            receiver=payload.receiver,
            group_key=payload.groupKey,
            external_url=payload.externalURL,
            first_received=previous.first_received if previous else now,
            last_received=now,
            notifications=(previous.notifications if previous else 0) + 1,
            context=previous.context if previous else None,
            forwarded=previous.forwarded if previous else {},
            context_scope=previous.context_scope if previous else None,
        )

    def with_context(self, context: AlertContext, scope: ContextScope | None = None) -> StoredAlert:
        return replace(self, context=context, context_scope=scope or self.context_scope)

    def with_forwarded(self, outcomes: Mapping[str, str]) -> StoredAlert:
        return replace(self, forwarded=dict(outcomes))

    def dump(self) -> Json:
        """The stored JSON form (keys in the order earlier versions wrote them)."""
        raw: Json = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "generator_url": self.generator_url,
            "receiver": self.receiver,
            "group_key": self.group_key,
            "external_url": self.external_url,
            "first_received": self.first_received,
            "last_received": self.last_received,
            "notifications": self.notifications,
            "context": None if self.context is None else self.context.dump(),
            "forwarded": dict(self.forwarded),
        }
        if self.context_scope is not None:
            raw["context_scope"] = self.context_scope.dump()
        return raw

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> StoredAlert:
        context, scope = raw.get("context"), raw.get("context_scope")
        return cls(
            fingerprint=raw["fingerprint"],
            status=cast(AlertStatus, raw["status"]),
            labels=dict(raw["labels"]),
            annotations=dict(raw["annotations"]),
            starts_at=raw.get("starts_at"),
            ends_at=raw.get("ends_at"),
            generator_url=raw.get("generator_url", ""),
            receiver=raw.get("receiver", ""),
            group_key=raw.get("group_key", ""),
            external_url=raw.get("external_url", ""),
            first_received=raw["first_received"],
            last_received=raw["last_received"],
            notifications=int(raw.get("notifications", 0)),
            context=None if context is None else AlertContext.load(context),
            forwarded=dict(raw.get("forwarded") or {}),
            context_scope=None if scope is None else ContextScope.load(scope),
        )


def forwarded_entry(entry: StoredAlert) -> Json:
    """`entry` as the alert receivers get it: without the posting key's policy and tenant."""
    sent = entry.dump()
    sent.pop("context_scope", None)
    return sent


def visible_entry(entry: StoredAlert, label_policy: str | None, tenant: str | None) -> Json:
    """`entry` as a reader with `label_policy` and `tenant` may see it: without the log context
    when that was read under another key's view."""
    shown = forwarded_entry(entry)
    scope = entry.context_scope or ContextScope()
    if entry.context is not None and not scope.readable_by(label_policy, tenant):
        shown["context"] = {"summary": None, "reason": HIDDEN_CONTEXT}
    return shown
