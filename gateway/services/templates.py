"""Template mining: mask variable tokens, then group lines into drain3 clusters.

One miner serves both the current and the previous window so that a template keeps its id across
them; each cluster counts its lines per window.

Secrets: a line is redacted before it is masked and clustered (once per line shape, see _SHAPE),
so template text is built from redacted tokens only; masking first could cut a secret into parts
the redactor no longer recognises. Samples are redacted from the raw line. Template text is
redacted once more on the way out.
"""

from __future__ import annotations

import json
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
_TIMESTAMP = r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
MASKING_INSTRUCTIONS = (
    MaskingInstruction(_TIMESTAMP, "TS"),
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
# Lines that may name an error code keep it in their key (see _CODE): "code -2019" and
# "code -1003" have different shapes. Only for those: this regex is 2-3 times slower.
_SHAPE_KEEPING_CODES = re.compile(
    r"(\b(?:code|errno|error|status|err)\s*[:=#]?\s*[-+]?\d{2,6}\b)|\w*\d[\w.:-]*", re.IGNORECASE
)
LEVELS = ("critical", "error", "warn", "info", "debug", "unknown")
# Error codes name the incident: "code -2019" and "code -1003" are two problems, not one template
# with a parameter. They are kept literal (hidden from the masker behind a letters-only token) and
# lines with different codes are mined apart.
_CODE = re.compile(
    r"(?i)\b(code|errno|error|status|err)(\s*[:=#]?\s*)([-+]?\d{2,6})\b(?![.:]\d)"
)
_CODE_MARK = "zqcodeq"
_CODE_MARK_RE = re.compile(_CODE_MARK + r"([a-z]+)")
# The message of a JSON line: its literal words are the template (the rest of the object is
# fields that vary per line and would mask the words away).
MESSAGE_FIELDS = ("msg", "message", "error", "err", "event")
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
    codes: tuple[str, ...] = ()

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


def _letters(index: int) -> str:
    return "".join(chr(ord("a") + int(d)) for d in str(index))


def _code_letters(code: str) -> str:
    """A code as letters only: drain treats every token with a digit as a parameter."""
    return code.replace("-", "m").replace("+", "p").translate(_DIGIT_LETTERS)


_DIGIT_LETTERS = str.maketrans("0123456789", "abcdefghij")


def error_codes(text: str) -> tuple[str, ...]:
    """The error codes a line names (`code -2019`, `status=503`), in order, each once."""
    return tuple(dict.fromkeys(match[3] for match in _CODE.finditer(text)))


def message_of(line: str) -> str | None:
    """The message field of a JSON object line, None for other lines."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    for name in MESSAGE_FIELDS:
        text = value.get(name)
        if isinstance(text, str) and text.strip():
            return text
    return None


class TemplateMiner:
    """Streams lines in; keeps only per-template aggregates (memory bounded by MAX_TEMPLATES)."""

    def __init__(self, redactor: Callable[[str], str], max_templates: int = MAX_TEMPLATES) -> None:
        self._redact = redactor
        self._masker = LogMasker(MASKING_INSTRUCTIONS, "<", ">")
        self._drain = Drain(
            sim_th=DRAIN_SIMILARITY, depth=DRAIN_DEPTH, max_clusters=max_templates, param_str="<*>"
        )
        self._by_shape: dict[str, int] = {}
        self._codes: dict[int, tuple[str, ...]] = {}
        self._stats: dict[int, TemplateStats] = {}

    def _mask(self, text: str) -> str:
        """Variable tokens masked, error codes kept as they are."""
        codes: list[str] = []

        def hide(match: re.Match[str]) -> str:
            codes.append(match[3])
            return f"{match[1]}{match[2]}{_CODE_MARK}{_letters(len(codes) - 1)}"

        masked = self._masker.mask(_CODE.sub(hide, _WHITESPACE.sub(" ", text.strip())))

        def restore(match: re.Match[str]) -> str:
            index = int("".join(str(ord(c) - ord("a")) for c in match[1]))
            return codes[index] if index < len(codes) else match[0]

        return _CODE_MARK_RE.sub(restore, masked)

    def cluster_of(self, line: str) -> int:
        """The id of the template `line` belongs to (mined into it if new)."""
        return self._cluster_of(line)

    def _cluster_of(self, line: str) -> int:
        if (  # substring tests are much cheaper than a case-insensitive regex scan of every line
            "err" in line or "code" in line or "tatus" in line or "Err" in line or "ERR" in line
            or "Code" in line or "CODE" in line or "TATUS" in line
        ):
            shape = _SHAPE_KEEPING_CODES.sub(r"\g<1>0", line)
        else:
            shape = _SHAPE.sub("0", line)
        cluster_id = self._by_shape.get(shape)
        if cluster_id is None or cluster_id not in self._drain.id_to_cluster:
            redacted = self._redact(line)
            text = message_of(redacted.strip()) or redacted
            # a leading code signature keeps drain from merging lines that name different codes
            codes = error_codes(text)
            signature = " ".join(f"{_CODE_MARK}{_code_letters(c)}" for c in codes)
            masked = self._mask(text)
            cluster, _ = self._drain.add_log_message(f"{signature} {masked}" if signature else masked)
            cluster_id = cluster.cluster_id
            self._codes[cluster_id] = codes  # one code set per cluster: the signature leads its tokens
            if len(self._by_shape) < MAX_SHAPE_CACHE:
                self._by_shape[shape] = cluster_id
        return cluster_id

    def _stats_for(self, cluster_id: int) -> TemplateStats:
        stats = self._stats.get(cluster_id)
        if stats is None:
            codes = self._codes.get(cluster_id, ())
            stats = self._stats[cluster_id] = TemplateStats(cluster_id, codes=codes)
        return stats

    def add_previous(self, line: str) -> None:
        self._stats_for(self._cluster_of(line)).previous_count += 1

    def add_current(self, ts_ns: int, labels: dict[str, str], line: str) -> None:
        stats = self._stats_for(self._cluster_of(line))
        level = normalise_level(labels.get("level"))
        stats.add_current(ts_ns, level, labels.get("service_name"), line, self._redact)

    def template_text(self, cluster_id: int) -> str:
        cluster = self._drain.id_to_cluster.get(cluster_id)
        if cluster is None:
            return "<evicted template>"
        words = [w for w in cluster.get_template().split(" ") if not w.startswith(_CODE_MARK)]
        return self._redact(" ".join(words))

    def stats(self) -> list[TemplateStats]:
        return list(self._stats.values())
