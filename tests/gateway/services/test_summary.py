"""The summary pipeline on a synthetic log: evidence, redaction before the model, the prompt
budget, the offline and model-error paths and the cache. OpenAI is mocked at the HTTP layer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from gateway.metrics import REGISTRY as GATEWAY_METRICS
from gateway.services.cache import MemoryCache
from gateway.services.llm import OpenAIChatModel
from gateway.services.redact import redact
from gateway.services.summarize import Summarizer, SummaryQuery, normalise_query, round_window
from gateway.services.templates import TemplateMiner
from tests.gateway.summary_logs import INCIDENT_COUNT, NS, SECRETS, SyntheticLog
from tests.openai_mock import OpenAIMock

END_NS = 1_763_798_400 * NS  # a whole minute
START_NS = END_NS - 3600 * NS
BIG_LOG_LINES = 100_000
OPENAI_KEY = "sk-test-not-a-real-key-0123456789"


def model_for(mock: OpenAIMock) -> OpenAIChatModel:
    return OpenAIChatModel(
        api_key=mock.api_key,
        model="gpt-test",
        base_url=mock.base_url,
        max_retries=0,
        timeout_seconds=5,
        http_client=mock.http_client(),
    )


def openai_errors(kind: str) -> float:
    labels = {"upstream": "openai", "kind": kind}
    return GATEWAY_METRICS.get_sample_value("gateway_upstream_errors_total", labels) or 0.0


def query(**overrides: Any) -> SummaryQuery:
    fields: dict[str, Any] = {
        "query": '{source=~".+"}',
        "start_ns": START_NS,
        "end_ns": END_NS,
        "max_lines": BIG_LOG_LINES,
    }
    fields.update(overrides)
    return SummaryQuery(**fields)


@pytest.fixture(scope="module")
def big_run() -> tuple[dict[str, Any], OpenAIMock, SyntheticLog]:
    """One 100k-line summary (current window) with the model mocked, shared by several checks."""
    mock = OpenAIMock(api_key=OPENAI_KEY)
    log = SyntheticLog(lines=BIG_LOG_LINES - INCIDENT_COUNT, incident_at_ns=START_NS + 1800 * NS)

    async def run() -> dict[str, Any]:
        return await Summarizer(log, redact, model_for(mock)).summarize(query())

    return asyncio.run(run()), mock, log


def test_incident_template_is_first_with_its_exact_count(big_run: tuple[dict[str, Any], Any, Any]) -> None:
    answer, _, _ = big_run
    assert answer["lines_read"] == BIG_LOG_LINES
    assert answer["truncated"] is False
    first = answer["evidence"][0]
    assert first["template"] == "payment gateway refused connection to <IP> for order <NUM>"
    assert first["count"] == INCIDENT_COUNT
    assert first["change"] == "new"
    assert first["levels"] == {"error": INCIDENT_COUNT}
    assert 1 <= len(first["samples"]) <= 3
    # the steady error template is more frequent but not news: it ranks below the incident
    steady = next(row for row in answer["evidence"] if row["template"].startswith("retrying job"))
    assert steady["count"] > first["count"]
    assert steady["change"] == "steady"
    assert sum(row["count"] for row in answer["evidence"]) == BIG_LOG_LINES


def test_previous_window_of_equal_length_is_read(big_run: tuple[dict[str, Any], Any, SyntheticLog]) -> None:
    answer, _, log = big_run
    previous, current = log.calls
    assert (previous["start_ns"], previous["end_ns"]) == (START_NS - 3600 * NS, START_NS)
    assert (current["start_ns"], current["end_ns"]) == (START_NS, END_NS)
    assert answer["previous_lines_read"] == BIG_LOG_LINES - INCIDENT_COUNT


def test_planted_secrets_never_reach_the_model(big_run: tuple[dict[str, Any], OpenAIMock, Any]) -> None:
    answer, mock, _ = big_run
    mock.assert_wire_format()
    assert len(mock.requests) == 1
    sent = mock.sent_text()
    assert "upstream auth retry" in sent  # the lines that carried secrets were part of the evidence
    answer_text = json.dumps(answer)
    for secret in SECRETS:  # no part of a secret, not only its start (masking could cut it up)
        for piece in (secret[i : i + 10] for i in range(len(secret) - 9)):
            assert piece not in sent and piece not in answer_text, piece
    assert "[REDACTED" in sent


def test_model_answer_and_usage_are_returned(big_run: tuple[dict[str, Any], OpenAIMock, Any]) -> None:
    answer, mock, _ = big_run
    body = mock.requests[0]
    assert body["model"] == "gpt-test"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "cite template ids" in body["messages"][0]["content"]
    first = answer["evidence"][0]
    assert answer["model"] == "gpt-test"
    assert answer["summary"] == answer["headline"] + f"\n[{first['id']}] occurred {INCIDENT_COUNT} times."
    assert answer["usage"]["total_tokens"] > 0
    assert answer["prompt"]["sent"] is True


class ManyTemplatesLog:
    """Each line its own template shape (distinct words), to overflow any prompt budget."""

    def __init__(self, templates: int, per_template: int) -> None:
        self.templates, self.per_template = templates, per_template

    async def iter_lines(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        page_size: int = 1000,
        max_lines: int | None = None,
    ) -> AsyncIterator[tuple[int, dict[str, str], str]]:
        rng = random.Random(7)
        letters = "abcdefghijklmnopqrstuvwxyz"
        for t in range(self.templates):
            words = " ".join("".join(rng.choice(letters) for _ in range(30)) for _ in range(5))
            for n in range(self.per_template):
                line = f"{words} took {n} ms"
                yield start_ns + t * self.per_template + n, {"level": "warn" if t % 2 else "info"}, line


@pytest.mark.parametrize("budget", [2_000, 6_000])
async def test_prompt_stays_within_the_byte_budget_and_says_what_was_dropped(budget: int) -> None:
    mock = OpenAIMock(api_key=OPENAI_KEY)
    answer = await Summarizer(ManyTemplatesLog(300, 3), redact, model_for(mock)).summarize(
        query(prompt_max_bytes=budget)
    )
    mock.assert_wire_format()
    sent_bytes = sum(len(m["content"].encode()) for m in mock.requests[0]["messages"])
    assert sent_bytes <= budget
    assert answer["prompt"]["bytes"] == sent_bytes
    assert answer["templates_total"] == 300
    assert answer["prompt"]["templates_omitted"] > 0
    assert answer["prompt"]["templates_included"] + answer["prompt"]["templates_omitted"] == 300
    assert "left out of the model's evidence" in mock.requests[0]["messages"][1]["content"]
    assert any("left out of the model's evidence" in note for note in answer["notes"])
    # the most important templates survive: what was included is the head of the ranking
    included = [r["id"] for r in answer["evidence"][: answer["prompt"]["templates_included"]]]
    assert all(f'"id": "{tid}"' in mock.requests[0]["messages"][1]["content"] for tid in included)


async def test_offline_path_gives_evidence_and_a_plain_digest() -> None:
    log = SyntheticLog(lines=5_000, incident_at_ns=START_NS + 60 * NS, incident_count=77)
    answer = await Summarizer(log, redact, None).summarize(query())
    first = answer["evidence"][0]
    assert answer["model"] is None and answer["usage"] is None and answer["model_error"] is None
    assert first["count"] == 77 and first["change"] == "new"
    assert f"[{first['id']}] x77" in answer["summary"]
    assert "1 template is new" in answer["summary"]
    assert answer["prompt"]["sent"] is False


async def test_model_error_falls_back_to_the_digest_and_is_not_cached() -> None:
    mock = OpenAIMock(api_key=OPENAI_KEY, fail_with_status=500)
    log = SyntheticLog(lines=2_000, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    summarizer = Summarizer(log, redact, model_for(mock), cache=MemoryCache())
    errors_before = openai_errors("status")
    first = await summarizer.summarize(query())
    mock.assert_wire_format()
    assert first["model"] is None
    assert first["model_error"] == "model endpoint answered HTTP 500"
    assert openai_errors("status") == errors_before + 1
    assert first["evidence"][0]["count"] == 40
    assert "x40" in first["summary"]
    second = await summarizer.summarize(query())
    assert second["cached"] is False
    assert len(mock.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        httpx2.Response(200, text="<html>proxy login</html>", headers={"content-type": "text/html"}),
        httpx2.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx2.Response(200, json={"choices": [{}]}),
        httpx2.Response(200, json={"choices": "none"}),
    ],
    ids=["html", "invalid-json", "choice-without-message", "choices-not-a-list"],
)
async def test_an_unreadable_model_answer_falls_back_to_the_digest(reply: httpx2.Response) -> None:
    """An OpenAI-compatible server (or a proxy before it) answering 200 with junk is a model
    error like any other: the plain digest with "model": null, not an exception (a 500)."""
    model = OpenAIChatModel(
        api_key=OPENAI_KEY, model="gpt-test", base_url="http://llm.test/v1", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(lambda request: reply)),
    )
    errors_before = openai_errors("invalid_response")
    log = SyntheticLog(lines=500, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    answer = await Summarizer(log, redact, model).summarize(query())
    assert answer["model"] is None and answer["model_error"]
    assert "x40" in answer["summary"]
    assert openai_errors("invalid_response") == errors_before + 1


async def test_identical_requests_within_the_ttl_hit_the_cache() -> None:
    mock = OpenAIMock(api_key=OPENAI_KEY)
    log = SyntheticLog(lines=2_000, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    summarizer = Summarizer(log, redact, model_for(mock), cache=MemoryCache(), cache_ttl_seconds=60)
    first = await summarizer.summarize(query(query='{source=~".+"}'))
    again = await summarizer.summarize(query(query='{ source=~".+" }  '))  # same once normalised
    assert first["cached"] is False and again["cached"] is True
    assert again["evidence"] == first["evidence"] and again["summary"] == first["summary"]
    assert len(mock.requests) == 1
    assert len(log.calls) == 2  # previous + current window, read once
    await summarizer.summarize(query(focus="errors"))
    assert len(mock.requests) == 2


async def test_focus_errors_reads_only_error_levels() -> None:
    log = SyntheticLog(lines=2_000, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    answer = await Summarizer(log, redact, None).summarize(query(focus="errors"))
    assert all(call["query"].endswith('| level=~"error|critical"') for call in log.calls)
    assert {level for row in answer["evidence"] for level in row["levels"]} == {"error"}


async def test_line_limit_marks_the_answer_truncated() -> None:
    log = SyntheticLog(lines=3_000, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    answer = await Summarizer(log, redact, None).summarize(query(max_lines=1_000))
    assert answer["lines_read"] == 1_000 and answer["truncated"] is True
    assert "truncated" in answer["summary"]


def test_query_normalisation_keeps_quoted_text() -> None:
    assert normalise_query('{ a = "x  y" ,b="z"}   |=  "two  spaces"') == '{a="x  y",b="z"}|="two  spaces"'


def test_window_rounding() -> None:
    start, end = round_window(START_NS + 59 * NS, END_NS + 30 * NS)
    assert (start, end) == (START_NS, END_NS)


def test_masking_groups_lines_that_differ_only_in_variables() -> None:
    miner = TemplateMiner(redact)
    for n, (ip, uid, hexid, order) in enumerate(
        [
            ("10.0.0.1:8080", "550e8400-e29b-41d4-a716-446655440000", "0x1f3a", "ord_8f3k2x9a"),
            ("192.168.7.20", "123e4567-e89b-12d3-a456-426614174000", "deadbeef42", "ord_77zz1q0b"),
        ]
    ):
        miner.add_current(n, {"level": "info"}, f"job {n + 41} from {ip} user {uid} blob {hexid} ref {order}")
    (stats,) = miner.stats()
    assert stats.count == 2
    assert miner.template_text(stats.cluster_id) == "job <NUM> from <IP> user <UUID> blob <HEX> ref <ID>"


def test_templates_and_samples_leave_the_miner_redacted() -> None:
    miner = TemplateMiner(redact)
    for n in range(3):
        miner.add_current(n, {"level": "warn"}, f"login retry {n} password=hunter2-Sup3rSecret!")
    (stats,) = miner.stats()
    assert "hunter2" not in miner.template_text(stats.cluster_id)
    assert stats.samples and not any("hunter2" in sample for sample in stats.samples)


def test_template_text_is_mined_from_redacted_lines() -> None:
    """Masking first would cut this JWT into <ID>.payload.signature, which the redactor no longer
    recognises: payload and signature (no digits, so not masked) would stay in the template."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ.SflKxwRJSMeKKFQTfwpMeJfPOkyJVadQsswc"
    miner = TemplateMiner(redact)
    miner.add_current(0, {"level": "info"}, f"session opened with {token}")
    (stats,) = miner.stats()
    template = miner.template_text(stats.cluster_id)
    assert "eyJzdWIiOiJhbGljZSJ" not in template and "SflKxwRJSMeKKFQ" not in template
    assert "[REDACTED JWT]" in template


async def test_a_model_endpoint_that_trickles_its_answer_is_cut_at_the_call_timeout() -> None:
    """A byte every 0.2 s never trips a read timeout: the whole call has the deadline (a summary,
    or an alert's context, must not wait forever). The digest is answered without the model."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    model = OpenAIChatModel(api_key=OPENAI_KEY, model="gpt-test", base_url=f"http://127.0.0.1:{port}/v1",
                            timeout_seconds=1.0, max_retries=2)
    errors_before = openai_errors("timeout")
    log = SyntheticLog(lines=500, incident_at_ns=START_NS + 60 * NS, incident_count=40)
    try:
        started = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(Summarizer(log, redact, model).summarize(query()), 20)
        took = asyncio.get_running_loop().time() - started
    finally:
        await model.aclose()
        server.close()
    assert answer["model"] is None and "did not answer within 1 s" in answer["model_error"]
    assert took < 10
    assert openai_errors("timeout") == errors_before + 1
