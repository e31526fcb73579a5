"""Template mining: mask variable tokens, then group lines into drain3 clusters.

One miner serves both the current and the previous window so that a template keeps its id across
them; each cluster counts its lines per window.

Secrets: a line is redacted before it is masked and clustered (once per line shape, see _SHAPE),
so template text is built from redacted tokens only; masking first could cut a secret into parts
the redactor no longer recognises. Samples are redacted from the raw line. Template text is
redacted once more on the way out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from drain3.drain import Drain
from drain3.masking import LogMasker, MaskingInstruction

# Order matters: the most specific shapes first, plain numbers last.
_UUID = r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"
_HEX = r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"
_ID = r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{8,}\b"  # letters and digits mixed, e.g. ord_8f3k2x9
MASKING_INSTRUCTIONS = (
    MaskingInstruction(_UUID, "UUID"),
    MaskingInstruction(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b", "IP"),
    MaskingInstruction(_HEX, "HEX"),
    MaskingInstruction(_ID, "ID"),
    MaskingInstruction(r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?", "NUM"),
)
DRAIN_SIMILARITY = 0.4
DRAIN_DEPTH = 4
MAX_TEMPLATES = 2000
MAX_SAMPLES = 3
MAX_SAMPLE_CHARS = 400
MAX_SHAPE_CACHE = 50_000
# A cheap coarse key: every word that holds a digit becomes "0". Lines with the same shape differ
# only in tokens the masker and drain turn into parameters anyway, so they share a cluster and the
# full masking + tree search runs once per shape instead of once per line.
_SHAPE = re.compile(r"\w*\d[\w.:-]*")
LEVELS = ("critical", "error", "warn", "info", "debug", "unknown")
_WHITESPACE = re.compile(r"\s+")


@dataclass
class TemplateStats:
    cluster_id: int
    count: int = 0
    previous_count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    levels: Counter[str] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    @property
    def template_id(self) -> str:
        return f"T{self.cluster_id}"

    def add_current(
        self, ts_ns: int, level: str, service: str | None, line: str, redactor: Callable[[str], str]
    ) -> None:
        self.count += 1
        self.first_ns = ts_ns if self.first_ns is None else min(self.first_ns, ts_ns)
        self.last_ns = ts_ns if self.last_ns is None else max(self.last_ns, ts_ns)
        self.levels[level] += 1
        if service and (service in self.services or len(self.services) < 5):
            self.services[service] += 1
        if len(self.samples) < MAX_SAMPLES:
            sample = redactor(line)[:MAX_SAMPLE_CHARS]
            if sample not in self.samples:
                self.samples.append(sample)


def normalise_level(value: str | None) -> str:
    level = (value or "unknown").lower()
    return level if level in LEVELS else "unknown"


class TemplateMiner:
    """Streams lines in; keeps only per-template aggregates (memory bounded by MAX_TEMPLATES)."""

    def __init__(self, redactor: Callable[[str], str], max_templates: int = MAX_TEMPLATES) -> None:
        self._redact = redactor
        self._masker = LogMasker(MASKING_INSTRUCTIONS, "<", ">")
        self._drain = Drain(
            sim_th=DRAIN_SIMILARITY, depth=DRAIN_DEPTH, max_clusters=max_templates, param_str="<*>"
        )
        self._by_shape: dict[str, int] = {}
        self._stats: dict[int, TemplateStats] = {}

    def _cluster_of(self, line: str) -> int:
        shape = _SHAPE.sub("0", line)
        cluster_id = self._by_shape.get(shape)
        if cluster_id is None or cluster_id not in self._drain.id_to_cluster:
            masked = self._masker.mask(_WHITESPACE.sub(" ", self._redact(line).strip()))
            cluster, _ = self._drain.add_log_message(masked)
            cluster_id = cluster.cluster_id
            if len(self._by_shape) < MAX_SHAPE_CACHE:
                self._by_shape[shape] = cluster_id
        return cluster_id

    def _stats_for(self, cluster_id: int) -> TemplateStats:
        stats = self._stats.get(cluster_id)
        if stats is None:
            stats = self._stats[cluster_id] = TemplateStats(cluster_id)
        return stats

    def add_previous(self, line: str) -> None:
        self._stats_for(self._cluster_of(line)).previous_count += 1

    def add_current(self, ts_ns: int, labels: dict[str, str], line: str) -> None:
        stats = self._stats_for(self._cluster_of(line))
        level = normalise_level(labels.get("level"))
        stats.add_current(ts_ns, level, labels.get("service_name"), line, self._redact)

    def template_text(self, cluster_id: int) -> str:
        cluster = self._drain.id_to_cluster.get(cluster_id)
        return self._redact(cluster.get_template()) if cluster is not None else "<evicted template>"

    def stats(self) -> list[TemplateStats]:
        return list(self._stats.values())
