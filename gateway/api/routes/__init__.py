"""One router per resource (health, monitoring, logs, summary, alerts)."""

from __future__ import annotations
