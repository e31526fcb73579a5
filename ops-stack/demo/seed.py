"""Demo data for docker-compose-ops.yml: JSON-lines objects under trades/, reflections/ and
strategies/ in the GCS emulator, and documents in the Firestore emulator, shaped like the trading
bots' own logs, so a new user sees data in Grafana within a minute.

Runs against the emulators only: it refuses to start unless STORAGE_EMULATOR_HOST and
FIRESTORE_EMULATOR_HOST are set. With DEMO_FOLLOW_SECONDS > 0 it keeps adding one object per
prefix and one document per collection at that interval, and touches DEMO_HEARTBEAT_FILE after
each round (the compose healthcheck reads it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LOG = logging.getLogger("demo-seed")

DEFAULT_BUCKET = "demo-logs"
DEFAULT_PROJECT = "demo-project"
DEFAULT_PREFIXES = ("trades/", "reflections/", "strategies/")
DEFAULT_COLLECTIONS = ("gpt_runner_trades", "gpt_runner_reflections")
DEFAULT_BACKFILL_MINUTES = 60
DEFAULT_LINES_PER_OBJECT = 40
DEFAULT_DOCS_PER_COLLECTION = 30
LINE_SPACING_MS = 1500
BACKFILL_STEP = timedelta(minutes=10)  # one object per prefix per step
DEFAULT_HEARTBEAT_FILE = "/tmp/demo-seed.heartbeat"  # noqa: S108 - inside the job's own container

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AAPL", "NVDA")
# Mostly info, some warnings, a few errors: enough for the error panels to show something.
LEVEL_WEIGHTS = (("info", 80), ("warn", 12), ("error", 7), ("critical", 1))
MESSAGES = {
    "trades/": {
        "info": "order filled",
        "warn": "slippage above threshold",
        "error": "order rejected by exchange: insufficient margin",
        "critical": "position limit breached, trading halted",
    },
    "reflections/": {
        "info": "reflection written",
        "warn": "reflection shorter than expected",
        "error": "model call failed: timeout after 30s",
        "critical": "reflection loop stopped",
    },
    "strategies/": {
        "info": "strategy evaluated",
        "warn": "signal confidence low",
        "error": "strategy raised an exception: division by zero",
        "critical": "strategy disabled after repeated failures",
    },
}


@dataclass(frozen=True, slots=True)
class SeedSettings:
    bucket: str
    project: str
    prefixes: tuple[str, ...]
    collections: tuple[str, ...]
    backfill_minutes: int
    lines_per_object: int
    docs_per_collection: int
    follow_seconds: int
    heartbeat_file: Path

    @classmethod
    def from_env(cls, env: dict[str, str]) -> SeedSettings:
        def csv(name: str, default: Sequence[str]) -> tuple[str, ...]:
            raw = env.get(name, "")
            return tuple(item.strip() for item in raw.split(",") if item.strip()) or tuple(default)

        return cls(
            bucket=env.get("GCS_BUCKET_NAME") or DEFAULT_BUCKET,
            project=env.get("FIRESTORE_PROJECT_ID") or DEFAULT_PROJECT,
            prefixes=csv("GCS_PREFIXES", DEFAULT_PREFIXES),
            collections=csv("FIRESTORE_COLLECTIONS", DEFAULT_COLLECTIONS),
            backfill_minutes=int(env.get("DEMO_BACKFILL_MINUTES", DEFAULT_BACKFILL_MINUTES)),
            lines_per_object=int(env.get("DEMO_LINES_PER_OBJECT", DEFAULT_LINES_PER_OBJECT)),
            docs_per_collection=int(env.get("DEMO_DOCS_PER_COLLECTION", DEFAULT_DOCS_PER_COLLECTION)),
            follow_seconds=int(env.get("DEMO_FOLLOW_SECONDS", "0")),
            heartbeat_file=Path(env.get("DEMO_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE),
        )


def pick_level(rng: random.Random) -> str:
    levels, weights = zip(*LEVEL_WEIGHTS, strict=True)
    return rng.choices(levels, weights=weights)[0]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_lines(prefix: str, start: datetime, count: int, rng: random.Random) -> Iterator[str]:
    """JSON lines with their own timestamp and level, a second or so apart."""
    kind = prefix.rstrip("/")
    messages = MESSAGES.get(prefix, MESSAGES["trades/"])
    for index in range(count):
        level = pick_level(rng)
        record: dict[str, Any] = {
            "timestamp": iso(start + timedelta(milliseconds=LINE_SPACING_MS * index)),
            "level": level,
            "message": messages[level],
            "bot": f"gpt-runner-{rng.randint(1, 3)}",
            "symbol": rng.choice(SYMBOLS),
            "kind": kind,
            "seq": index,
        }
        if kind == "trades":
            record |= {"side": rng.choice(("buy", "sell")), "qty": round(rng.uniform(0.01, 2), 4),
                       "price": round(rng.uniform(10, 60000), 2)}
        yield json.dumps(record, separators=(",", ":"))


def object_name(prefix: str, start: datetime) -> str:
    return f"{prefix}{start:%Y/%m/%d}/{prefix.rstrip('/')}-{start:%H%M%S}.jsonl"


def seed_objects(bucket: Any, prefixes: Sequence[str], start: datetime, lines: int,
                 rng: random.Random) -> list[str]:
    """Upload one JSON-lines object per prefix whose first entry is at `start`."""
    written = []
    for prefix in prefixes:
        name = object_name(prefix, start)
        body = "\n".join(log_lines(prefix, start, lines, rng)) + "\n"
        bucket.blob(name).upload_from_string(body, content_type="application/x-ndjson")
        written.append(name)
    return written


def document(collection: str, moment: datetime, rng: random.Random) -> dict[str, Any]:
    level = pick_level(rng)
    prefix = "reflections/" if "reflection" in collection else "trades/"
    return {
        "timestamp": moment,
        "level": level,
        "message": MESSAGES[prefix][level],
        "bot": f"gpt-runner-{rng.randint(1, 3)}",
        "symbol": rng.choice(SYMBOLS),
        "pnl": round(rng.uniform(-250, 400), 2),
    }


def seed_documents(db: Any, collections: Sequence[str], start: datetime, count: int,
                   rng: random.Random, span: timedelta = timedelta(0)) -> int:
    """Write `count` documents per collection, spread evenly over `span` from `start`, with ids
    derived from their time (a rerun overwrites rather than duplicates)."""
    written = 0
    for collection in collections:
        batch = db.batch()
        for index in range(count):
            moment = start + span * index / count
            doc_id = f"demo-{moment:%Y%m%dT%H%M%S}-{index:04d}"
            batch.set(db.collection(collection).document(doc_id), document(collection, moment, rng))
            written += 1
        batch.commit()
    return written


def storage_bucket(settings: SeedSettings) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=settings.project, credentials=AnonymousCredentials())
    bucket = client.bucket(settings.bucket)
    if not bucket.exists():
        client.create_bucket(settings.bucket)
        LOG.info("created bucket %s", settings.bucket)
    return client.bucket(settings.bucket)


def firestore_client(settings: SeedSettings) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=settings.project)


def require_emulators(env: dict[str, str]) -> None:
    missing = [name for name in ("STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST") if not env.get(name)]
    if missing:
        raise SystemExit(f"demo seed writes to emulators only; set {', '.join(missing)}")


def run(settings: SeedSettings, now: datetime | None = None) -> None:
    rng = random.Random(7)
    now = now or datetime.now(UTC)
    bucket = storage_bucket(settings)
    db = firestore_client(settings)
    start = now - timedelta(minutes=settings.backfill_minutes)
    # A restarted job must not write a second, overlapping history (the GCS volume persists; the
    # Firestore emulator starts empty each time).
    if any(next(iter(bucket.list_blobs(prefix=prefix, max_results=1)), None) for prefix in settings.prefixes):
        LOG.info("objects already there, no backfill")
    else:
        moment = start
        while moment < now:
            seed_objects(bucket, settings.prefixes, moment, settings.lines_per_object, rng)
            moment += BACKFILL_STEP
        LOG.info("seeded %d minutes of objects under %s", settings.backfill_minutes,
                 ",".join(settings.prefixes))
    empty = [c for c in settings.collections if next(iter(db.collection(c).limit(1).stream()), None) is None]
    docs = seed_documents(db, empty, start, settings.docs_per_collection, rng, span=now - start)
    LOG.info("seeded %d documents into %s", docs, ",".join(empty) or "no collection (all had documents)")
    settings.heartbeat_file.touch()
    while settings.follow_seconds > 0:
        time.sleep(settings.follow_seconds)
        names = add_round(bucket, db, settings, rng, datetime.now(UTC))
        settings.heartbeat_file.touch()
        LOG.info("added %s", ", ".join(names))


def add_round(bucket: Any, db: Any, settings: SeedSettings, rng: random.Random, now: datetime) -> list[str]:
    """One new object per prefix ending at `now` (no entry from the future) and one document per
    collection."""
    lines = max(5, settings.lines_per_object // 4)
    moment = now - timedelta(milliseconds=LINE_SPACING_MS * lines)
    names = seed_objects(bucket, settings.prefixes, moment, lines, rng)
    seed_documents(db, settings.collections, now, 1, rng)
    return names


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(message)s")
    env = dict(os.environ)
    require_emulators(env)
    run(SeedSettings.from_env(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
