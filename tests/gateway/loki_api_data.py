"""Logs planted in the real Loki for the Loki-compatible API tests: three sources under one run id,
the non-GCS ones carrying text no GCS-scoped answer may ever contain."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import GatewaySettings
from tests.gateway.conftest import KeysFile, make_settings
from tests.real_loki import RealLoki, run_id

SECOND = 1_000_000_000
LINES_PER_SOURCE = 12
# Text only firestore and pod streams hold: in any answer to the GCS-scoped key it is a leak.
FORBIDDEN = ("fs-hidden-svc", "pod-hidden-svc", "FSLINE", "PODLINE", "fs-owner-", "hidden-ns")
GCS_POLICY = '{source="gcs"}'
SM_SECRET = "sm-secret-4f2a9c"  # a structured-metadata value under a secret's name


@dataclass(frozen=True)
class Planted:
    run: str
    start_ns: int
    end_ns: int

    def window(self) -> dict[str, str]:
        return {"start": str(self.start_ns), "end": str(self.end_ns)}


def plant(loki: RealLoki) -> Planted:
    run = run_id("lokiapi")
    base = time.time_ns() - 10 * 60 * SECOND
    streams: list[dict[str, Any]] = [
        {
            "stream": {
                "source": "gcs",
                "service_name": "trades",
                "bucket": "b1",
                "prefix": "trades",
                "level": "info",
                "run": run,
            },
            "values": [
                [
                    str(base + i * SECOND),
                    f'{{"msg":"gcs trade {i}","qty":{i}}}',
                    {"object": f"trades/{i % 3}.json"},
                ]
                for i in range(LINES_PER_SOURCE - 1)
            ]
            + [
                [
                    str(base + 30 * SECOND),
                    "gcs login password=hunter2 ok",
                    {"object": "trades/x.json", "api_key": SM_SECRET},
                ]
            ],
        },
        {
            "stream": {
                "source": "firestore",
                "service_name": "fs-hidden-svc",
                "collection": "c1",
                "level": "error",
                "run": run,
            },
            "values": [
                [str(base + i * SECOND + 1), f"FSLINE {i} doc changed", {"doc_id": f"fs-owner-{i}"}]
                for i in range(LINES_PER_SOURCE)
            ],
        },
        {
            "stream": {
                "source": "pod",
                "service_name": "pod-hidden-svc",
                "namespace": "hidden-ns",
                "pod": "p-1",
                "container": "c",
                "level": "warn",
                "run": run,
            },
            "values": [
                [str(base + i * SECOND + 2), f"PODLINE {i} restarted"] for i in range(LINES_PER_SOURCE)
            ],
        },
    ]
    response = loki.push_raw({"streams": streams})
    response.raise_for_status()
    return Planted(run, base - 60 * SECOND, time.time_ns() + 60 * SECOND)


@dataclass(frozen=True)
class Keys:
    full: str
    gcs: str
    no_logs: str
    settings: GatewaySettings


def keys_for(loki: RealLoki, directory: Path, **overrides: Any) -> Keys:
    keys = KeysFile(directory / "keys.yaml")
    full = keys.add("full", ["logs:read"])
    gcs = keys.add("team-gcs", ["logs:read"], label_policy=GCS_POLICY)
    no_logs = keys.add("alerts-only", ["alerts:write"])
    settings = make_settings(gateway_api_keys_file=keys.path, loki_url=loki.url, **overrides)
    return Keys(full, gcs, no_logs, settings)


def leaks(text: str) -> list[str]:
    return [word for word in FORBIDDEN if word in text]
