"""LogRecords -> Entries ready to encode, with Loki's limits applied (see limits.py).

This is the per-record hot path: label sets are prepared once and cached (sources reuse a few
label sets for many records), ASCII lines are measured without encoding them, and a record's
metadata dict is passed through untouched unless something has to be added to it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shipper.models import LineMetadata, LogRecord
from shipper.sinks.loki import limits
from shipper.sinks.loki.encode import Entry, StreamLabels

_LABEL_CACHE_MAX = 50_000  # distinct label sets remembered; cleared when exceeded
_ENTRY_OVERHEAD_BYTES = 16  # timestamp + framing, for batch sizing


@dataclass(slots=True)
class Prepared:
    entries: list[Entry] = field(default_factory=list)
    too_old: list[int] = field(default_factory=list)  # indexes into the input
    adjusted: Counter[str] = field(default_factory=Counter)  # adjustment reason -> records


@dataclass(frozen=True, slots=True)
class _LabelSet:
    stream: StreamLabels
    moved: Mapping[str, str]  # labels over MAX_LABELS, shipped as structured metadata
    adjustments: tuple[str, ...]  # counted once per record using this label set


class Preparer:
    def __init__(self, *, max_line_bytes: int = limits.MAX_LINE_BYTES, max_age_ns: int | None = None,
                 max_future_ns: int = limits.MAX_FUTURE_NS) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_age_ns = max_age_ns
        self.max_future_ns = max_future_ns
        self._label_sets: dict[tuple[tuple[str, str], ...], _LabelSet] = {}
        self._streams: dict[str, StreamLabels] = {}  # label string -> the one shared object
        self._checked_names: dict[tuple[str, ...], int] = {}  # valid metadata names -> their size

    def prepare(self, records: Sequence[LogRecord], *, now_ns: int) -> Prepared:
        out = Prepared()
        entries, adjusted = out.entries, out.adjusted
        oldest = now_ns - self.max_age_ns if self.max_age_ns is not None else None
        newest = now_ns + self.max_future_ns
        max_line_bytes = self.max_line_bytes
        label_sets = self._label_sets
        checked_names = self._checked_names
        append = entries.append
        previous_labels: object = None
        stream: StreamLabels  # set with the first record's labels
        moved: Mapping[str, str] = {}
        adjustments: tuple[str, ...] = ()
        for index, record in enumerate(records):
            ts = record.ts_ns
            if oldest is not None and ts < oldest:
                out.too_old.append(index)
                continue
            labels = record.labels
            if labels is not previous_labels:  # sources often share one dict between records
                key = tuple(labels.items())
                label_set = label_sets.get(key) or self._label_set(key)
                stream, moved, adjustments = label_set.stream, label_set.moved, label_set.adjustments
                previous_labels = labels
            if adjustments:
                for reason in adjustments:
                    adjusted[reason] += 1
            line = record.line
            if line.isascii():
                line_bytes = len(line)
            else:
                try:
                    line_bytes = len(line.encode("utf-8"))
                except UnicodeEncodeError:  # lone surrogates: not representable on the wire
                    line = line.encode("utf-8", "replace").decode("utf-8")
                    line_bytes = len(line.encode("utf-8"))
                    adjusted[limits.INVALID_UTF8] += 1
            if line_bytes > max_line_bytes:
                line = limits.truncate_line(line, line_bytes, max_line_bytes)
                line_bytes = len(line.encode("utf-8"))
                adjusted[limits.TRUNCATED] += 1
            metadata: Mapping[str, str] = record.metadata
            if ts > newest:
                metadata = {**metadata, limits.ORIGINAL_TS_KEY: str(ts)}
                ts = now_ns
                adjusted[limits.TIMESTAMP_CLAMPED] += 1
            if moved:
                metadata = {**metadata, **moved}
            size = line_bytes + _ENTRY_OVERHEAD_BYTES
            if type(metadata) is LineMetadata and (names_size := checked_names.get(metadata.shared.names)):
                # the shared values are sized once per object
                size += names_size + metadata.shared.values_size + len(metadata.line_no)
            elif metadata:
                try:  # names checked before (a few tuples per source): their size is remembered
                    names_size = checked_names[tuple(metadata)]
                    # len() raises TypeError for a non-string value
                    size += names_size + sum(map(len, metadata.values()))
                except (KeyError, TypeError):
                    metadata, metadata_bytes = self._checked_metadata(metadata, adjusted)
                    size += metadata_bytes
            append(Entry(index, stream, ts, line, metadata, size, line_bytes))
        return out

    def _checked_metadata(
        self, metadata: Mapping[str, str], adjusted: Counter[str]
    ) -> tuple[Mapping[str, str], int]:
        """Metadata with valid names and string values (the same object when already so), and its
        size; name tuples found valid are remembered so the hot path can skip this."""
        fixed: dict[str, str] = {}
        changed = False
        for name, value in metadata.items():
            clean = limits.sanitise_label_name(str(name))
            text = value if isinstance(value, str) else str(value)
            if clean != name:
                adjusted[limits.LABELS_SANITISED] += 1
                changed = True
            changed = changed or text is not value
            fixed[clean] = text
        if not changed:
            if len(self._checked_names) >= _LABEL_CACHE_MAX:
                self._checked_names.clear()
            self._checked_names[tuple(metadata)] = sum(map(len, metadata))
        result = fixed if changed else metadata
        return result, sum(len(k) + len(v) for k, v in result.items())

    def _label_set(self, key: tuple[tuple[str, str], ...]) -> _LabelSet:
        if len(self._label_sets) >= _LABEL_CACHE_MAX:
            self._label_sets.clear()
            self._streams.clear()
        adjustments: set[str] = set()
        clean: dict[str, str] = {}
        moved: dict[str, str] = {}
        for name, raw_value in key:
            value = raw_value if isinstance(raw_value, str) else str(raw_value)
            if not value:
                continue  # an empty label value means "no such label"
            safe_name = limits.sanitise_label_name(str(name))
            safe_value = value.encode("utf-8", "replace").decode("utf-8")[: limits.MAX_LABEL_VALUE_CHARS]
            if safe_name != name or safe_value != value:
                adjustments.add(limits.LABELS_SANITISED)
            if safe_name in clean:  # two names sanitised to the same one: keep the first as label
                moved[safe_name] = safe_value
                adjustments.add(limits.LABELS_SANITISED)
                continue
            clean[safe_name] = safe_value
        if not clean:
            clean["service_name"] = limits.FALLBACK_SERVICE_NAME
            adjustments.add(limits.LABELS_SANITISED)
        if len(clean) > limits.MAX_LABELS:
            ordered = sorted(clean, key=limits.label_priority)
            for name in ordered[limits.MAX_LABELS :]:
                moved[name] = clean.pop(name)
            adjustments.add(limits.LABELS_DROPPED)
        stream = StreamLabels(clean)
        stream = self._streams.setdefault(stream.label_string, stream)
        label_set = _LabelSet(stream, moved, tuple(sorted(adjustments)))
        self._label_sets[key] = label_set
        return label_set
