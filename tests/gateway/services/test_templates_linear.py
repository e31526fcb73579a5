"""Template mining in linear time (issue 21 item 1): the shape key and the variable masker are
RE2 now; they must mask exactly what the old Python patterns (with lookarounds) masked, and no
line may take long however it is built."""

from __future__ import annotations

import random
import re
import time

import pytest

from gateway.services.redact import redact
from gateway.services.templates import MAX_MINED_CHARS, TemplateMiner, mask_variables

# the masking instructions before RE2 (Python re, drain3's LogMasker applied them in this order)
OLD_INSTRUCTIONS = [
    (r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b", "<UUID>"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b", "<IP>"),
    (r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b", "<HEX>"),
    (r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{8,}\b", "<ID>"),
    (r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?", "<NUM>"),
]


def old_mask(text: str) -> str:
    for pattern, mask in OLD_INSTRUCTIONS:
        text = re.sub(pattern, mask, text)
    return text


TOKENS = [
    "job", "42", "-7", "+3.5", "v2", "abc123", "a1.5", "x-9", "10.0.0.1", "10.0.0.1:8080", "0x1f3a",
    "deadbeef42", "deadbeef", "12345678", "ord_8f3k2x9a", "ord_77zz1q0b", "abcdefgh-ijk",
    "550e8400-e29b-41d4-a716-446655440000", "user", "=", ":", "-", ".", "_", "a-", "-b", "1.2.3",
    "HTTP/1.1", "200", "took", "12ms", "1e10", "k8s", "x86_64", "utf-8",
]


def test_the_re2_masker_masks_what_the_old_patterns_masked() -> None:
    rng = random.Random(21)
    for _ in range(5_000):
        line = "".join(rng.choice(TOKENS) + rng.choice(["", " ", "=", "/", ",", "-"]) for _ in range(8))
        assert mask_variables(line) == old_mask(line), line


def test_the_shape_key_is_what_the_unanchored_pattern_gave() -> None:
    from gateway.services.templates import _SHAPE

    old_shape = re.compile(r"\w*\d[\w.:-]*")
    rng = random.Random(7)
    for _ in range(5_000):
        seps = ["", " ", "=", "/", ",", "-", ".", ":"]
        line = "".join(rng.choice(TOKENS) + rng.choice(seps) for _ in range(8))
        assert _SHAPE.sub("0", line) == old_shape.sub("0", line), line


@pytest.mark.parametrize(
    "line",
    ["x" * 60_000, "x-" * 30_000, "://" + "a." * 40_000, "1" * 60_000, "a1" * 30_000, "0x" + "f" * 60_000,
     "ab-" * 20_000 + "1", "password=" + "a" * 60_000],
)
def test_hostile_lines_are_mined_quickly(line: str) -> None:
    miner = TemplateMiner(redact)
    started = time.perf_counter()
    miner.add_current(1, {"level": "error"}, line)
    miner.add_previous(line + " ")
    elapsed = time.perf_counter() - started
    (stats,) = miner.stats()
    assert len(miner.template_text(stats.cluster_id)) <= MAX_MINED_CHARS
    assert elapsed < 1.0, f"{elapsed:.2f} s for one {len(line)}-character line"


def test_aggregates_stay_bounded_by_max_templates_on_varied_lines() -> None:
    """Drain keeps max_templates templates; the miner's aggregates (samples and all) of the ones
    it evicted go too, so varied lines cost memory bounded by max_templates, not by lines."""
    rng = random.Random(3)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))

    miner = TemplateMiner(redact, max_templates=20)
    for index in range(2_000):
        miner.add_current(index, {"level": "error"}, f"{word()} {word()} failed on {word()}")
    assert len(miner.stats()) <= 2 * 20
