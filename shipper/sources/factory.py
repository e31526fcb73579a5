"""Build a Source from its config; the heavy client libraries are imported only when used."""

from __future__ import annotations

from shipper.config import ShipperSettings, SourceConfig
from shipper.sources.base import Source


def build_source(config: SourceConfig, settings: ShipperSettings) -> Source:
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
