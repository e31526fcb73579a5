"""What a pass could not store: entries Loki refused (the sink's PushResult.rejected) and records
the source skipped (`shipper_records_skipped_total`, read for this source before and after the
pass, so every source's own reasons count without each one reporting them twice). Either makes
the pass `partial`: `shipper once` exits 3 and `shipper run` counts `outcome="partial"`."""

from __future__ import annotations

from collections import Counter

from shipper.metrics import RECORDS_SKIPPED

# Skips that lose nothing: an empty line is no record; a GCS object that changed while it was
# read is read again, whole, on the next pass.
NOT_A_LOSS = frozenset({"blank_line", "object_changed"})


def skipped_so_far(source: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in RECORDS_SKIPPED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("source") == source:
                counts[sample.labels["reason"]] += int(sample.value)
    return counts


def skipped_since(source: str, before: Counter[str], rejected: Counter[str]) -> Counter[str]:
    """Records skipped by reason since `before`, without those already in `rejected` (the sink
    counts the entries it does not send as too old both as skipped and as rejected)."""
    now = skipped_so_far(source)
    lost = Counter({reason: now[reason] - before[reason] for reason in now if reason not in NOT_A_LOSS})
    lost.subtract(rejected)
    return +lost
