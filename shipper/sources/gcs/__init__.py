"""The GCS source (source.py says what it reads and how), split by job: listing.py lists the
bucket, reader.py streams an object's bytes, sniff.py tells its format, objects.py reads one
object into records (records.py builds them, append.py recognises an append), cursor.py is the
checkpointed entry per object, limits.py the sizes it reads by."""

from __future__ import annotations

from shipper.sources.gcs.cursor import ObjectEntry, base_ns_of, first_base_ns
from shipper.sources.gcs.limits import DEFAULT_BATCH_RECORDS, GcsLimits
from shipper.sources.gcs.listing import ObjectInfo, build_storage_client
from shipper.sources.gcs.source import GcsSource

__all__ = [
    "DEFAULT_BATCH_RECORDS",
    "GcsLimits",
    "GcsSource",
    "ObjectEntry",
    "ObjectInfo",
    "base_ns_of",
    "build_storage_client",
    "first_base_ns",
]
