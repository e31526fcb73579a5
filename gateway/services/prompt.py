"""The model prompt, built under a byte budget. Parts are dropped least important first (samples
of the lowest-ranked templates, then the lowest-ranked templates themselves) and the prompt says
what was left out."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.services.evidence import EvidenceRow
from gateway.services.times import format_ns

MAX_PROMPT_BYTES = 32_000  # hard ceiling (about 8k tokens at 4 bytes/token) whatever the settings say
MIN_PROMPT_BYTES = 1_500
MAX_PROMPT_TEMPLATES = 60
MAX_TEMPLATE_CHARS = 300
MAX_PROMPT_SAMPLE_CHARS = 240
MAX_SELECTOR_CHARS = 300
BYTES_PER_TOKEN = 4

SYSTEM_PROMPT = (
    "You summarise application logs for an on-call engineer. You get an evidence table of log "
    "templates mined from the logs (id, count in this window, count in the previous window of "
    "equal length, change, level mix, first/last seen, a few redacted samples). Rules: use only "
    "the evidence; cite template ids in square brackets like [T3] together with their counts "
    "exactly as given; never invent ids, counts, hosts or causes; say when the evidence is not "
    "enough. If parts of the evidence were omitted, say so. Answer in at most 8 short bullet "
    "points: what happened, what is new or growing, what to look at first."
)


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    templates_included: int
    templates_omitted: int
    samples_omitted: int

    @property
    def size_bytes(self) -> int:
        return len(self.system.encode()) + len(self.user.encode())

    @property
    def estimated_tokens(self) -> int:
        return -(-self.size_bytes // BYTES_PER_TOKEN)

    @property
    def omission_note(self) -> str | None:
        if not (self.templates_omitted or self.samples_omitted):
            return None
        return (
            f"To fit the prompt budget, {self.templates_omitted} lower-ranked templates and "
            f"{self.samples_omitted} samples were left out of the model's evidence "
            "(they are still counted in the totals)."
        )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_text(row: EvidenceRow, with_samples: bool) -> str:
    fields: dict[str, object] = {
        "id": row.template_id,
        "count": row.count,
        "previous_count": row.previous_count,
        "change": row.change.value,
        "levels": row.levels,
        "first_seen": format_ns(row.first_seen_ns),
        "last_seen": format_ns(row.last_seen_ns),
        "template": _clip(row.template, MAX_TEMPLATE_CHARS),
    }
    if row.services:
        fields["services"] = row.services[:3]
    if with_samples and row.samples:
        fields["samples"] = [_clip(s, MAX_PROMPT_SAMPLE_CHARS) for s in row.samples]
    return json.dumps(fields, ensure_ascii=False) + "\n"


def build_prompt(
    rows: list[EvidenceRow],
    *,
    selector: str,
    window: tuple[int, int],
    lines: int,
    previous_lines: int,
    truncated: bool,
    focus: str,
    max_bytes: int,
) -> Prompt:
    budget = max(MIN_PROMPT_BYTES, min(max_bytes, MAX_PROMPT_BYTES))
    header = (
        f"Selector: {_clip(selector, MAX_SELECTOR_CHARS)}\n"
        f"Window: {format_ns(window[0])} to {format_ns(window[1])} (focus: {focus})\n"
        f"Lines read: {lines}{' (cut at the line limit)' if truncated else ''}; "
        f"previous window: {previous_lines} lines; templates: {len(rows)}\n"
    )
    considered = rows[:MAX_PROMPT_TEMPLATES]
    full = [_row_text(row, True) for row in considered]
    bare = [_row_text(row, False) for row in considered]
    chosen = list(full)
    reserve = 400  # room for the omission note
    used = len(SYSTEM_PROMPT.encode()) + len(header.encode()) + reserve + 30
    used += sum(len(text.encode()) for text in chosen)
    # Least important first: strip samples from the bottom of the ranking up ...
    for index in range(len(chosen) - 1, -1, -1):
        if used <= budget:
            break
        if chosen[index] != bare[index]:
            used -= len(chosen[index].encode()) - len(bare[index].encode())
            chosen[index] = bare[index]
    # ... then drop whole templates from the bottom.
    while chosen and used > budget:
        used -= len(chosen.pop().encode())
    templates_omitted = len(rows) - len(chosen)
    samples_omitted = sum(
        len(row.samples)
        for index, row in enumerate(rows)
        if index >= len(chosen) or chosen[index] == bare[index]
    )
    body = header + "Evidence (most important first, one JSON object per template):\n" + "".join(chosen)
    prompt = Prompt(SYSTEM_PROMPT, body, len(chosen), templates_omitted, samples_omitted)
    if prompt.omission_note:
        body += f"Note: {prompt.omission_note}\n"
        prompt = Prompt(SYSTEM_PROMPT, body, len(chosen), templates_omitted, samples_omitted)
    return prompt
