"""The Grafana Loki sink: push.proto/push_pb2 (wire format), encode (payloads), prepare + limits
(Loki's limits before sending), late (late streams), config (LokiSinkConfig), transport (HTTP
requests, push retries), rejections (reading 400 answers), accounting (acknowledged or rejected,
per push), held (what Loki holds already), report (logging rejections), client (LokiSink)."""

from __future__ import annotations

from shipper.sinks.loki.client import LokiSink
from shipper.sinks.loki.config import LokiSinkConfig

__all__ = ["LokiSink", "LokiSinkConfig"]
