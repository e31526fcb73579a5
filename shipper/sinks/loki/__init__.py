"""The Grafana Loki sink: push.proto/push_pb2 (wire format), encode (payloads), prepare + limits
(Loki's limits before sending), rejections (reading 400 answers), client (push with retries)."""

from __future__ import annotations

from shipper.sinks.loki.client import LokiSink, LokiSinkConfig

__all__ = ["LokiSink", "LokiSinkConfig"]
