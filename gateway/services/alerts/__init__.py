"""Alertmanager notifications: the v4 webhook payload and the typed stored entry (models), a
bounded store keyed by fingerprint (store, redis_store), forwarding to receivers (receivers) and
log-context enrichment (processor)."""

from __future__ import annotations

from gateway.services.alerts.models import (
    HIDDEN_CONTEXT,
    AlertContext,
    AlertStatus,
    ContextScope,
    StoredAlert,
    TemplateRow,
    WebhookAlert,
    WebhookPayload,
    visible_entry,
)
from gateway.services.alerts.processor import (
    CONTEXT_ALERTS_PER_NOTIFICATION,
    AlertProcessor,
    ContextSummarizer,
    context_selector,
    context_window,
    summarizer_context,
)
from gateway.services.alerts.receivers import (
    STREAM_LABELS,
    Forwarder,
    GenericWebhookReceiver,
    Receiver,
    SlackReceiver,
)
from gateway.services.alerts.store import DEFAULT_ALERTS_MAX_BYTES, AlertStore, Change, MemoryAlertStore

__all__ = [
    "CONTEXT_ALERTS_PER_NOTIFICATION",
    "DEFAULT_ALERTS_MAX_BYTES",
    "HIDDEN_CONTEXT",
    "STREAM_LABELS",
    "AlertContext",
    "AlertProcessor",
    "AlertStatus",
    "AlertStore",
    "Change",
    "ContextScope",
    "ContextSummarizer",
    "Forwarder",
    "GenericWebhookReceiver",
    "MemoryAlertStore",
    "Receiver",
    "SlackReceiver",
    "StoredAlert",
    "TemplateRow",
    "WebhookAlert",
    "WebhookPayload",
    "context_selector",
    "context_window",
    "summarizer_context",
    "visible_entry",
]
