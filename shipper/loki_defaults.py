"""The Loki sink's defaults, in one place: the settings (config.ShipperSettings) and the sink's own
config (sinks.loki.config.LokiSinkConfig) both take theirs from here. A leaf module: the settings
import it without loading the sink."""

from __future__ import annotations

from typing import Literal

LOKI_URL = "http://127.0.0.1:3100"
PUSH_FORMAT: Literal["protobuf", "json"] = "protobuf"
TIMEOUT_SECONDS = 30.0
# 2 MiB: 13 % more lines/s than 1 MiB into the real Loki, same CPU (alternated, 6 of 6 pairs);
# ~2.2 MB on the wire, under the 4 MiB gRPC limit behind Loki's push (transport.py, GRPC_TOO_LARGE)
BATCH_MAX_BYTES = 2 << 20
BATCH_MAX_ENTRIES = 10_000
RETRY_MIN_BACKOFF_SECONDS = 0.5
RETRY_MAX_BACKOFF_SECONDS = 30.0
RETRY_MAX_TOTAL_SECONDS = 300.0
MAX_LINE_BYTES = 256 * 1024  # Loki's default max_line_size
MAX_AGE_HOURS = 168.0  # Loki's default reject_old_samples_max_age
