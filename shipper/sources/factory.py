"""Build a Source from its config; the heavy client libraries are imported only when used."""

from __future__ import annotations

from shipper.config import ShipperSettings, SourceConfig
from shipper.models import Cursor
from shipper.sources.base import Backfillable, BackfillPass, Source
from shipper.startup import importing


def build_source(config: SourceConfig, settings: ShipperSettings) -> Source:
    with importing():  # the source's client library
        return _build_source(config)


def _build_source(config: SourceConfig) -> Source:
    if config.type == "gcs":
        from shipper.sources.gcs import GcsSource

        return GcsSource.from_config(config)
    if config.type == "firestore":
        from shipper.sources.firestore import FirestoreSource

        return FirestoreSource.from_config(config)
    if config.type == "pods":
        from shipper.sources.pods import PodSource

        return PodSource.from_config(config)
    raise ValueError(f"unknown source type {config.type!r}")


def build_backfill(
    config: SourceConfig, settings: ShipperSettings, *, since_ns: int, separate_stream: bool,
    live_cursor: Cursor | None,
) -> BackfillPass:
    """The backfill of the source `config` describes (ValueError when its type has none)."""
    live = build_source(config, settings)
    if not isinstance(live, Backfillable):
        raise ValueError(f"{config.type} sources have no backfill")
    return live.for_backfill(since_ns, separate_stream=separate_stream, live_cursor=live_cursor)
