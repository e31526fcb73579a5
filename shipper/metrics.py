"""Prometheus collectors of the shipper. Names are a contract with grafana-dashboards/ and the
Prometheus rules in ops-stack/: rename only together with them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

LINES_SHIPPED = Counter(
    "shipper_lines_shipped", "Entries acknowledged by Loki.", ["source"], registry=REGISTRY
)
BYTES_SHIPPED = Counter(
    "shipper_bytes_shipped", "Line bytes acknowledged by Loki.", ["source"], registry=REGISTRY
)
ENTRIES_REJECTED = Counter(
    "shipper_entries_rejected",
    "Entries Loki refused (400 partial success), by reason.",
    ["source", "reason"],
    registry=REGISTRY,
)
RECORDS_ADJUSTED = Counter(
    "shipper_records_adjusted",
    "Records shipped after a change (truncated, timestamp_clamped, parse_error, invalid_utf8, "
    "labels_sanitised, labels_dropped) or found late (late_arrival).",
    ["source", "reason"],
    registry=REGISTRY,
)
RECORDS_SKIPPED = Counter(
    "shipper_records_skipped",
    "Records or objects not shipped, by reason (binary_object, too_old, read_error ...).",
    ["source", "reason"],
    registry=REGISTRY,
)
PUSH_REQUESTS = Counter(
    "shipper_push_requests", "Push requests sent to Loki, by HTTP status class.", ["status"],
    registry=REGISTRY,
)
PUSH_RETRIES = Counter(
    "shipper_push_retries", "Push retries, by reason (429, 5xx, network).", ["reason"],
    registry=REGISTRY,
)
PUSH_FAILURES = Counter(
    "shipper_push_failures", "Pushes abandoned after the retry budget.", registry=REGISTRY
)
PUSH_DURATION = Histogram(
    "shipper_push_duration_seconds",
    "Latency of one push request to Loki.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RUNS = Counter(
    "shipper_runs",
    "Source passes, by outcome (success; partial: finished, some records not stored; failure; stopped).",
    ["source", "outcome"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "shipper_last_success_timestamp_seconds",
    "Unix time of the last pass of a source that finished without error.",
    ["source"],
    registry=REGISTRY,
)
CHECKPOINT_LAG = Gauge(
    "shipper_checkpoint_lag_seconds",
    "Now minus the timestamp of the newest entry covered by the committed checkpoint.",
    ["source"],
    registry=REGISTRY,
)
IS_LEADER = Gauge(
    "shipper_is_leader", "1 when this replica holds the leader lease (or runs alone).",
    registry=REGISTRY,
)


class MetricsServerError(Exception):
    """/metrics cannot be served (the port is taken, the host is not ours)."""


def serve_metrics(port: int, host: str) -> None:
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise MetricsServerError(
            f"cannot serve /metrics on {host}:{port} (SHIPPER_METRICS_HOST, SHIPPER_METRICS_PORT): "
            f"{exc.strerror or exc}"
        ) from exc
