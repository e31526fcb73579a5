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
from typing import Any

import re2
from drain3.drain import Drain

# Every pattern that sees log text is RE2 (linear time): with Python's `re`, `\w*\d[\w.:-]*` took
# 23 s on one 60 KB line of `x` (each start position rescans the rest of the line), and the
# lookaheads of the ID and HEX shapes did the same on `x-x-x-...`. RE2 has no lookaround, so the
# conditions those expressed are checked on each match instead.
_TIMESTAMP = r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_UUID = r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"
_IP = r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"
_HEX = r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b"  # the long form needs a letter and a digit
_ID = r"\b[\w-]{8,}\b"  # letters and digits mixed, e.g. ord_8f3k2x9
# a number, not where a letter comes right before it: the letter and the next character are
# matched and kept, so the search goes on after them (as `(?<![A-Za-z])` went on with the next one)
_NUM = r"[A-Za-z][-+\d]|[-+]?\d+(?:\.\d+)?"
_HAS_DIGIT = re.compile(r"\d").search
_HAS_HEX_LETTER = re.compile(r"[a-fA-F]").search
_HAS_LETTER = re.compile(r"[A-Za-z]").search


def _hex(match: Any) -> str:
    text: str = match.group(0)
    if text.startswith("0x") or (_HAS_HEX_LETTER(text) and _HAS_DIGIT(text)):
        return "<HEX>"
    return text


def _id(match: Any) -> str:
    text: str = match.group(0)
    return "<ID>" if _HAS_DIGIT(text) and _HAS_LETTER(text) else text


def _num(match: Any) -> str:
    text: str = match.group(0)
    return text if text[0].isalpha() else "<NUM>"


# Order matters: the most specific shapes first, plain numbers last.
MASKING_INSTRUCTIONS: tuple[tuple[Any, str | Callable[[Any], str]], ...] = (
    (re2.compile(_TIMESTAMP), "<TS>"),
    (re2.compile(_UUID), "<UUID>"),
    (re2.compile(_IP), "<IP>"),
    (re2.compile(_HEX), _hex),
    (re2.compile(_ID), _id),
    (re2.compile(_NUM), _num),
)
DRAIN_SIMILARITY = 0.4
DRAIN_DEPTH = 4
MAX_TEMPLATES = 2000
MAX_SAMPLES = 3
MAX_SAMPLE_CHARS = 400
MAX_SHAPE_CACHE = 50_000
# Templates are mined from a line's first characters: a 256 KB line makes no better template than
# its start, and 2,000 templates of whole lines could hold half a gigabyte.
MAX_MINED_CHARS = 2048
# A cheap coarse key: every word that holds a digit becomes "0". Lines with the same shape differ
# only in tokens the masker and drain turn into parameters anyway, so they share a cluster and the
# full masking + tree search runs once per shape instead of once per line. It runs on every line,
# so it stays Python's `re` (one C call; RE2's binding costs microseconds per match), made linear
# by the `\b`: a match can only start where a word starts, so no start position rescans the line
# (without it, 60 KB of `x` took 23 s). Same matches as without it: a word holding a digit is
# matched from its start anyway, and a word without one fails from any of its positions.
_SHAPE = re.compile(r"\b\w*\d[\w.:-]*")
# Lines that may name an error code keep it in their key (see _CODE): "code -2019" and
# "code -1003" have different shapes. Only for those: this regex is 2-3 times slower.
_SHAPE_KEEPING_CODES = re.compile(
    r"(\b(?:code|errno|error|status|err)\s*[:=#]?\s*[-+]?\d{2,6}\b)|\b\w*\d[\w.:-]*", re.IGNORECASE
)


def mask_variables(text: str) -> str:
    """`text` with variable tokens (ids, numbers, addresses) replaced by <KIND> placeholders."""
    for pattern, replacement in MASKING_INSTRUCTIONS:
        text = pattern.sub(replacement, text)
    return text


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


def _mask_keeping_codes(text: str) -> str:
    """Variable tokens masked, error codes kept as they are."""
    codes: list[str] = []

    def hide(match: re.Match[str]) -> str:
        codes.append(match[3])
        return f"{match[1]}{match[2]}{_CODE_MARK}{_letters(len(codes) - 1)}"

    masked = mask_variables(_CODE.sub(hide, _WHITESPACE.sub(" ", text.strip())))

    def restore(match: re.Match[str]) -> str:
        index = int("".join(str(ord(c) - ord("a")) for c in match[1]))
        return codes[index] if index < len(codes) else match[0]

    return _CODE_MARK_RE.sub(restore, masked)


def normalise_level(value: str | None) -> str:
    level = (value or "unknown").lower()
    return level if level in LEVELS else "unknown"


class TemplateMiner:
    """Streams lines in; keeps only per-template aggregates (memory bounded by MAX_TEMPLATES)."""

    def __init__(self, redactor: Callable[[str], str], max_templates: int = MAX_TEMPLATES) -> None:
        self._redact = redactor
        self._max_templates = max_templates
        self._drain = Drain(
            sim_th=DRAIN_SIMILARITY, depth=DRAIN_DEPTH, max_clusters=max_templates, param_str="<*>"
        )
        self._by_shape: dict[str, int] = {}
        self._codes: dict[int, tuple[str, ...]] = {}
        self._stats: dict[int, TemplateStats] = {}

    def cluster_of(self, line: str) -> int:
        """The id of the template `line` belongs to (mined into it if new)."""
        return self._cluster_of(line)

    def _cluster_of(self, line: str) -> int:
        head = line[:MAX_MINED_CHARS]
        if (  # substring tests are much cheaper than a case-insensitive regex scan of every line
            "err" in head or "code" in head or "tatus" in head or "Err" in head or "ERR" in head
            or "Code" in head or "CODE" in head or "TATUS" in head
        ):
            shape = _SHAPE_KEEPING_CODES.sub(r"\g<1>0", head)
        else:
            shape = _SHAPE.sub("0", head)
        cluster_id = self._by_shape.get(shape)
        if cluster_id is None or cluster_id not in self._drain.id_to_cluster:
            # redacted whole, then cut: a cut could leave a secret its redactor no longer recognises
            redacted = self._redact(line)
            text = (message_of(redacted.strip()) or redacted)[:MAX_MINED_CHARS]
            # a leading code signature keeps drain from merging lines that name different codes
            codes = error_codes(text)
            signature = " ".join(f"{_CODE_MARK}{_code_letters(c)}" for c in codes)
            masked = _mask_keeping_codes(text)
            cluster, _ = self._drain.add_log_message(f"{signature} {masked}" if signature else masked)
            cluster_id = cluster.cluster_id
            self._codes[cluster_id] = codes  # one code set per cluster: the signature leads its tokens
            if len(self._by_shape) < MAX_SHAPE_CACHE:
                self._by_shape[shape] = cluster_id
        return cluster_id

    def _stats_for(self, cluster_id: int) -> TemplateStats:
        stats = self._stats.get(cluster_id)
        if stats is None:
            if len(self._stats) >= 2 * self._max_templates:
                self._forget_evicted()
            codes = self._codes.get(cluster_id, ())
            stats = self._stats[cluster_id] = TemplateStats(cluster_id, codes=codes)
        return stats

    def _forget_evicted(self) -> None:
        """Drop the aggregates of templates drain has evicted (the least recently seen, past
        max_templates): varied lines would otherwise keep one per line, samples and all. Run once
        the aggregates reach twice max_templates, so at most once every max_templates new ones."""
        alive = self._drain.id_to_cluster
        self._stats = {key: stats for key, stats in self._stats.items() if key in alive}
        self._codes = {key: codes for key, codes in self._codes.items() if key in alive}

    def add_previous(self, line: str) -> None:
        self._stats_for(self._cluster_of(line)).previous_count += 1

    def add_current(self, ts_ns: int, labels: dict[str, str], line: str) -> None:
        stats = self._stats_for(self._cluster_of(line))
        level = normalise_level(labels.get("level"))
        stats.add_current(ts_ns, level, labels.get("service_name"), line, self._redact)

    def add_lines(self, lines: list[tuple[int, dict[str, str], str]], current: bool) -> None:
        """Many lines of one window (the unit a worker thread mines)."""
        if current:
            for ts_ns, labels, line in lines:
                self.add_current(ts_ns, labels, line)
        else:
            for _, _, line in lines:
                self.add_previous(line)

    def template_text(self, cluster_id: int) -> str:
        cluster = self._drain.id_to_cluster.get(cluster_id)
        if cluster is None:
            return "<evicted template>"
        words = [w for w in cluster.get_template().split(" ") if not w.startswith(_CODE_MARK)]
        return self._redact(" ".join(words))

    def stats(self) -> list[TemplateStats]:
        return list(self._stats.values())
