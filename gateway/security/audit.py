"""One audit event per authentication attempt, on the `gateway.audit` logger."""

from __future__ import annotations

import json
import logging
from typing import Literal

from gateway.metrics import AUTH
from gateway.services.times import now_z

audit_log = logging.getLogger("gateway.audit")

Outcome = Literal["ok", "missing", "invalid", "expired", "forbidden", "rate_limited"]


def audit(outcome: Outcome, key_ref: str, client: str, method: str, path: str, scope: str) -> None:
    """One JSON audit event per authentication attempt, and the matching metric."""
    AUTH.labels(outcome=outcome).inc()
    event = {
        "event": "auth",
        "kind": "audit",
        "outcome": outcome,
        "key": key_ref,
        "client": client,
        "method": method,
        "path": path,
        "scope": scope,
        "ts": now_z(),
    }
    level = logging.INFO if outcome == "ok" else logging.WARNING
    audit_log.log(level, json.dumps(event, separators=(",", ":")))
