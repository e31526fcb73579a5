"""POST /logs/summary and /api/monitoring/summary over HTTP: validation, label policy, defaults,
the offline answer and the model answer. Loki (respx, the documented query_range wire format)
and OpenAI (httpx2 mock transport) are mocked at the HTTP layer."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from gateway.errors import Failure, as_api_error
from gateway.main import create_app
from gateway.security import Principal
from gateway.services.summary_request import SummaryRequest, summary_query
from tests.gateway.conftest import LOKI_TEST_URL, make_settings
from tests.gateway.loki_answers import recorded_streams
from tests.openai_mock import OpenAIMock

QUERY_RANGE = f"{LOKI_TEST_URL}/loki/api/v1/query_range"
NS = 1_000_000_000
OPENAI_KEY = "sk-test-0123456789abcdef"


def loki_answer(request: httpx.Request, lines: list[str]) -> httpx.Response:
    """A streams answer for the asked window: `lines` in the current window (the last hour), one
    unrelated line in the previous one."""
    start, end = int(request.url.params["start"]), int(request.url.params["end"])
    current = end - start == 3600 * NS and start > (time.time_ns() - 2 * 3600 * NS)
    chosen = lines if current else ["cache warmed in 3 ms"]
    step = (end - start) // (len(chosen) + 1)
    values = [[str(start + (i + 1) * step), line, {}] for i, line in enumerate(chosen)]
    labels = {"source": "pod", "service_name": "api", "level": "error"}
    return recorded_streams([{"stream": labels, "values": values}])


INCIDENT = [f"disk full on volume vol-{i} after write of {i * 7} bytes" for i in range(30)]
BACKGROUND = [f"request {i} served" for i in range(10)]


@pytest.fixture
def loki() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as router:
        router.get(QUERY_RANGE).mock(side_effect=lambda req: loki_answer(req, INCIDENT + BACKGROUND))
        yield router


async def test_summary_requires_a_key(client: httpx.AsyncClient, loki: respx.MockRouter) -> None:
    response = await client.post("/logs/summary", json={"source": "pod"})
    assert response.status_code == 401
    assert response.json()["error"]["code"]


class CountedBody:
    """A 4 MiB request body, streamed, that counts the chunks the server pulled."""

    def __init__(self) -> None:
        self.chunks_read = 0

    async def __aiter__(self) -> Any:
        for _ in range(64):
            self.chunks_read += 1
            yield b"x" * 65536


async def test_the_key_is_checked_before_a_byte_of_the_body_is_read(
    client: httpx.AsyncClient, loki: respx.MockRouter
) -> None:
    body = CountedBody()
    response = await client.post("/logs/summary", content=body, headers={"x-api-key": "not-a-key"})
    assert response.status_code == 401  # not a 400/422 about the (not JSON) body
    assert body.chunks_read == 0


async def test_a_body_over_the_limit_is_refused_as_soon_as_it_passes_it(
    client: httpx.AsyncClient, loki: respx.MockRouter, auth_headers: dict[str, str]
) -> None:
    body = CountedBody()
    streamed = await client.post("/logs/summary", content=body, headers=auth_headers)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert body.chunks_read == 2  # 64 KiB is the limit: the second chunk passes it
    declared = await client.post("/logs/summary", content=b"{" + b" " * 70_000 + b"}", headers=auth_headers)
    assert declared.status_code == 413
    assert not loki.calls


async def test_offline_summary_over_http_defaults_to_the_last_hour(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: respx.MockRouter
) -> None:
    response = await client.post(
        "/logs/summary", json={"source": "pod", "service_name": "api"}, headers=auth_headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] is None
    assert answer["lines_read"] == 40 and answer["previous_lines_read"] == 1
    assert answer["evidence"][0]["count"] == 30
    assert answer["evidence"][0]["template"].startswith("disk full on volume")
    calls = [call.request for call in loki.calls]
    assert len(calls) == 2
    previous, current = calls
    assert current.url.params["query"] == '{source="pod",service_name="api"}'
    assert current.url.params["direction"] == "forward"
    current_start, current_end = int(current.url.params["start"]), int(current.url.params["end"])
    assert current_end - current_start == 3600 * NS
    assert abs(current_end - time.time_ns()) < 120 * NS
    assert int(previous.url.params["end"]) == current_start


async def test_alias_path_and_focus_errors(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: respx.MockRouter
) -> None:
    response = await client.post(
        "/api/monitoring/summary",
        json={"selector": '{source="pod"} |= "disk"', "focus": "errors"},
        headers=auth_headers,
    )
    assert response.status_code == 200, response.text
    sent = loki.calls.last.request.url.params["query"]
    assert sent == '{source="pod"}|="disk" | level=~"error|critical"'


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"selector": "{}"}, 400, "query_too_broad"),
        ({"selector": 'sum(rate({source="pod"}[5m]))'}, 400, "invalid_selector"),
        ({"selector": '{source="pod"}', "source": "pod"}, 400, "invalid_request"),
        ({"source": "pod", "max_lines": 10_000_000}, 400, "max_lines_too_large"),
        (
            {"source": "pod", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            400,
            "invalid_range",
        ),
        (
            {"source": "pod", "start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"},
            400,
            "range_too_long",
        ),
        (
            {"source": "pod", "start": "0001-01-01T00:00:00Z", "end": "0001-01-01T01:00:00Z"},
            400,
            "invalid_range",
        ),
        ({"source": "nfs"}, 422, "invalid_request"),
        ({"source": "pod", "focus": "everything"}, 422, "invalid_request"),
        ({"source": "pod", "surprise": 1}, 422, "invalid_request"),
    ],
)
async def test_bad_input_gets_an_envelope(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    loki: respx.MockRouter,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await client.post("/logs/summary", json=body, headers=auth_headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert not loki.calls


async def test_label_policy_is_injected_into_the_summary_query(keys_file: Any, client_for: Any) -> None:
    key = keys_file.add("gcs-only", ["summary"], label_policy='{source="gcs"}')
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    with respx.mock() as router:
        route = router.get(QUERY_RANGE).mock(side_effect=lambda req: loki_answer(req, BACKGROUND))
        async with client_for(app) as client:
            response = await client.post("/logs/summary", json={"source": "pod"}, headers={"x-api-key": key})
    assert response.status_code == 200, response.text
    queries = {call.request.url.params["query"] for call in route.calls}
    assert queries == {'{source="pod",source="gcs"}'}


def test_a_principal_with_a_broken_label_policy_gets_a_403() -> None:
    """Keys files refuse such a policy at load time; should one reach a request anyway, it is the
    key's fault, answered as the log endpoints answer it (403), not a 500."""
    principal = Principal(name="broken", scopes=frozenset({"summary"}), label_policy='{a="b"}{c="d"}')
    with pytest.raises(Failure) as raised:
        summary_query(SummaryRequest(source="pod"), make_settings(), principal)
    assert (as_api_error(raised.value).status, raised.value.code) == (403, "invalid_label_policy")


async def test_summary_with_a_model_over_http(api_key: str, client_for: Any) -> None:
    mock = OpenAIMock(api_key=OPENAI_KEY, base_url="http://llm.test/openai/v1")
    settings = make_settings(
        ai_monitoring_api_key=api_key,
        openai_api_key=OPENAI_KEY,
        openai_base_url=mock.base_url,
        openai_model="gpt-test",
    )
    app = create_app(settings, llm_http_client=mock.http_client())
    with respx.mock() as router:
        router.get(QUERY_RANGE).mock(side_effect=lambda req: loki_answer(req, INCIDENT + BACKGROUND))
        async with client_for(app) as client:
            # an explicit window: one ending at now is rounded to the minute, so two requests
            # straddling a minute would ask for different windows and miss the cache
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            body = {"source": "pod", "start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
            first = await client.post("/logs/summary", json=body, headers={"x-api-key": api_key})
            again = await client.post("/logs/summary", json=body, headers={"x-api-key": api_key})
    mock.assert_wire_format()
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["model"] == "gpt-test"
    assert answer["summary"] == answer["headline"] + f"\n[{answer['evidence'][0]['id']}] occurred 30 times."
    assert again.json()["cached"] is True
    assert len(mock.requests) == 1
