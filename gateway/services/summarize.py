"""Log summaries: evidence first, deterministically; the model last, on a fixed budget.

read lines (bounded) -> mine templates (samples and template text redacted as they leave the
miner) -> compare with the previous window -> prompt under a byte budget -> model. Without a
model, or when it fails, the answer carries the same evidence and a plain-language digest with
"model": null.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from anyio import to_thread

from gateway.services.evidence import EvidenceRow, build_evidence, disappeared, headline, plain_digest
from gateway.services.llm import ChatModel, ModelError
from gateway.services.logql import build_log_query
from gateway.services.prompt import Prompt, build_prompt
from gateway.services.templates import TemplateMiner
from gateway.services.times import echo_window

log = logging.getLogger(__name__)

Focus = Literal["errors", "all"]
Redactor = Callable[[str], str]
Line = tuple[int, dict[str, str], str]

WINDOW_STEP_SECONDS = 60  # windows are rounded to this step so near-identical requests share a cache entry
ERROR_FILTER = ' | level=~"error|critical"'
MAX_EVIDENCE_ROWS = 50
SUMMARY_COMPLETION_TOKENS = 800
CACHE_KEY_PREFIX = "summary:"
MINE_BATCH_LINES = 1000  # lines mined per worker-thread hop (a hop costs ~0.1 ms, a line ~10 us)
MINE_BATCH_CHARS = 1 << 20
_NS = 1_000_000_000
_SPACES = re.compile(r"\s+")
_AROUND_PUNCTUATION = re.compile(r"\s*([{},]|=~|!~|!=|=)\s*")


class LineReader(Protocol):
    """What the summary needs from Loki (gateway.services.loki.LokiClient implements it)."""

    def iter_lines(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        page_size: int = 1000,
        max_lines: int | None = None,
    ) -> AsyncIterator[tuple[int, dict[str, str], str]]: ...


class SummaryCache(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None: ...


@dataclass(frozen=True)
class SummaryQuery:
    query: str  # a LogQL log query the caller's label policy already allows
    start_ns: int
    end_ns: int
    focus: Focus = "all"
    max_lines: int = 100_000
    tenant: str | None = None
    prompt_max_bytes: int = 24_000
    completion_tokens: int = SUMMARY_COMPLETION_TOKENS


def selector_from_labels(labels: dict[str, str]) -> str | None:
    """`{a="x", b="y"}` with values quoted as LogQL strings; None for no labels."""
    present = {name: value for name, value in labels.items() if value}
    return build_log_query(present) if present else None


def _normalise_unquoted(text: str) -> str:
    return _AROUND_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", text))


def normalise_query(query: str) -> str:
    """Whitespace outside quoted strings carries no meaning in LogQL beyond separating words."""
    parts = re.split(r'("(?:[^"\\]|\\.)*"|`[^`]*`)', query.strip())
    return "".join(part if index % 2 else _normalise_unquoted(part) for index, part in enumerate(parts))


def round_window(start_ns: int, end_ns: int, step_seconds: int = WINDOW_STEP_SECONDS) -> tuple[int, int]:
    step = step_seconds * _NS
    start, end = start_ns - start_ns % step, end_ns - end_ns % step
    return start, max(end, start + step)


def with_focus(query: str, focus: Focus) -> str:
    return query + ERROR_FILTER if focus == "errors" else query


class Summarizer:
    def __init__(
        self,
        reader: LineReader,
        redactor: Redactor,
        model: ChatModel | None,
        *,
        cache: SummaryCache | None = None,
        cache_ttl_seconds: float = 300.0,
    ) -> None:
        self._reader = reader
        self._redact = redactor
        self._model = model
        self._cache = cache
        self._cache_ttl = cache_ttl_seconds

    def cache_key(self, q: SummaryQuery) -> str:
        parts = [normalise_query(q.query), q.start_ns, q.end_ns, q.focus, q.max_lines, q.tenant]
        parts += [q.prompt_max_bytes, self._model.name if self._model else None]
        digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        return CACHE_KEY_PREFIX + digest

    async def summarize(self, q: SummaryQuery) -> dict[str, Any]:
        key = self.cache_key(q)
        if self._cache is not None:
            cached = await self._cache.get(key)
            if cached is not None:
                return {**cached, "cached": True}
        answer = await self._summarize(q)
        if self._cache is not None and answer["model_error"] is None:
            await self._cache.set(key, answer, self._cache_ttl)
        return answer

    async def _read(
        self, miner: TemplateMiner, q: SummaryQuery, query: str, start_ns: int, end_ns: int, current: bool
    ) -> tuple[int, bool]:
        """Feeds one window into the miner; returns (lines read, cut at the limit). Mining runs in
        a worker thread, a batch at a time, so no line (however long) stalls the event loop."""
        read, cut = 0, False
        batch: list[Line] = []
        batch_chars = 0
        lines = self._reader.iter_lines(
            query, start_ns=start_ns, end_ns=end_ns, tenant=q.tenant, max_lines=q.max_lines + 1
        )
        async for entry in lines:
            if read >= q.max_lines:
                cut = True
                break
            read += 1
            batch.append(entry)
            batch_chars += len(entry[2])
            if len(batch) >= MINE_BATCH_LINES or batch_chars >= MINE_BATCH_CHARS:
                await to_thread.run_sync(miner.add_lines, batch, current)
                batch, batch_chars = [], 0
        if batch:
            await to_thread.run_sync(miner.add_lines, batch, current)
        return read, cut

    async def _summarize(self, q: SummaryQuery) -> dict[str, Any]:
        started = time.perf_counter()
        query = with_focus(normalise_query(q.query), q.focus)
        miner = TemplateMiner(self._redact)
        reading = await self._read_windows(miner, q, query)
        rows = await to_thread.run_sync(
            partial(build_evidence, miner, lines=reading.lines, previous_lines=reading.previous_lines,
                    comparable=not (reading.truncated or reading.previous_cut))
        )
        gone = disappeared(miner)
        prompt = build_prompt(
            rows,
            selector=self._redact(query),
            window=(q.start_ns, q.end_ns),
            lines=reading.lines,
            previous_lines=reading.previous_lines,
            truncated=reading.truncated,
            focus=q.focus,
            max_bytes=q.prompt_max_bytes,
        )
        reply = await self._ask_model(prompt, q.completion_tokens) if reading.lines > 0 else _ModelReply()
        evidence = _Evidence(rows, gone, reading)
        return _answer(q, query, evidence, prompt, reply, started)

    async def _read_windows(self, miner: TemplateMiner, q: SummaryQuery, query: str) -> _Reading:
        """Feeds the previous window (as long as `q`'s, just before it) and then `q`'s into the miner."""
        length = q.end_ns - q.start_ns
        previous_lines, previous_cut = await self._read(
            miner, q, query, q.start_ns - length, q.start_ns, current=False
        )
        lines, truncated = await self._read(miner, q, query, q.start_ns, q.end_ns, current=True)
        return _Reading(lines, truncated, previous_lines, previous_cut)

    async def _ask_model(self, prompt: Prompt, completion_tokens: int) -> _ModelReply:
        """The model's summary of the prompt, or why there is none (no model, or its error)."""
        if self._model is None:
            return _ModelReply()
        try:
            answer = await self._model.complete(prompt.system, prompt.user, max_tokens=completion_tokens)
        except ModelError as exc:
            log.warning("summary model call failed, answering with the plain digest: %s", exc)
            return _ModelReply(error=str(exc))
        # the model saw redacted evidence only; its answer is masked like a line all the same
        return _ModelReply(self._redact(answer.text), answer.model, answer.usage())


@dataclass(frozen=True)
class _Reading:
    """How many lines the two windows gave the miner, and whether either was cut at the limit."""

    lines: int
    truncated: bool
    previous_lines: int
    previous_cut: bool


@dataclass(frozen=True)
class _Evidence:
    rows: list[EvidenceRow]
    gone: int  # templates seen in the previous window only
    reading: _Reading


@dataclass(frozen=True)
class _ModelReply:
    summary: str | None = None
    model: str | None = None
    usage: dict[str, int | None] | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        """Whether the prompt went to a model (it answered or failed)."""
        return self.model is not None or self.error is not None


def _answer(
    q: SummaryQuery, query: str, evidence: _Evidence, prompt: Prompt, reply: _ModelReply, started: float
) -> dict[str, Any]:
    rows, reading = evidence.rows, evidence.reading
    first_line = headline(rows, lines=reading.lines)
    return {
        "summary": _summary_text(evidence, reply.summary, first_line),
        "headline": first_line,
        "model": reply.model,
        "usage": reply.usage,
        "model_error": reply.error,
        "query": query,
        "focus": q.focus,
        "window": _windows(q),
        "lines_read": reading.lines,
        "previous_lines_read": reading.previous_lines,
        "truncated": reading.truncated,
        "templates_total": len(rows),
        "templates_disappeared": evidence.gone,
        "evidence": [row.as_dict() for row in rows[:MAX_EVIDENCE_ROWS]],
        "prompt": _prompt_report(prompt, reply.sent),
        "notes": _notes(prompt, reply.sent, len(rows)),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
        "cached": False,
    }


def _summary_text(evidence: _Evidence, model_summary: str | None, first_line: str) -> str:
    """The model's summary led by the headline, or without a model the plain digest."""
    if model_summary is None:
        lines, truncated = evidence.reading.lines, evidence.reading.truncated
        return plain_digest(evidence.rows, lines=lines, truncated=truncated, gone=evidence.gone)
    if model_summary.startswith(first_line):
        return model_summary
    return f"{first_line}\n{model_summary}"  # the incident named before the model's prose


def _windows(q: SummaryQuery) -> dict[str, Any]:
    """The window summarised and the previous one it is compared with."""
    length = q.end_ns - q.start_ns
    return {
        **echo_window(q.start_ns, q.end_ns),
        "previous": echo_window(q.start_ns - length, q.start_ns),
        "step_seconds": WINDOW_STEP_SECONDS,
    }


def _prompt_report(prompt: Prompt, sent: bool) -> dict[str, Any]:
    return {
        "bytes": prompt.size_bytes,
        "estimated_tokens": prompt.estimated_tokens,
        "templates_included": prompt.templates_included,
        "templates_omitted": prompt.templates_omitted,
        "samples_omitted": prompt.samples_omitted,
        "sent": sent,
    }


def _notes(prompt: Prompt, sent: bool, templates: int) -> list[str]:
    notes = [note for note in (prompt.omission_note,) if note and sent]
    if templates > MAX_EVIDENCE_ROWS:
        notes.append(f"The evidence table lists the top {MAX_EVIDENCE_ROWS} of {templates} templates.")
    return notes
