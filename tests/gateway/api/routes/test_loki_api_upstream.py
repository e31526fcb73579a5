"""What a real Loki cannot be made to do on demand (5xx, 429, refused connections, junk), answered
by an HTTP mock in Loki's formats: the Loki-compatible routes map each to the gateway's envelope
with Loki's own `message`, never a 500; and the encoding flag passes only when we can redact it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from gateway.main import create_app
from gateway.services.loki_passthrough import encoding_flags
from tests.gateway.conftest import LOKI_TEST_URL, KeysFile, make_settings

API = "/loki/api/v1"
QUERY = {"query": '{source="gcs"}'}


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (httpx.Response(500, text="rpc error: code = Internal desc = boom"), 502, "loki_error"),
        (httpx.Response(429, text="too many outstanding requests"), 503, "loki_busy"),
        (httpx.Response(400, text="parse error at line 1, col 5: syntax error"), 400, "loki_bad_request"),
        (httpx.Response(200, text="<html>not json</html>"), 502, "loki_error"),
        (httpx.Response(200, json={"status": "error"}), 502, "loki_error"),
        (
            httpx.Response(
                200,
                json={
                    "status": "success",
                    "data": {
                        "resultType": "streams",
                        "result": [{"stream": {"source": "gcs"}, "values": [["1", 42]]}],
                    },
                },
            ),
            502,
            "loki_error",
        ),
        (httpx.ConnectError("refused"), 503, "loki_unavailable"),
        (httpx.ReadTimeout("slow"), 504, "loki_timeout"),
    ],
)
async def test_loki_failures_become_envelopes_with_a_message(
    keys_file: KeysFile, client_for: Callable[..., Any], answer: Any, status: int, code: str
) -> None:
    key = keys_file.add("reader", ["logs:read"], label_policy='{source="gcs"}')
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    with respx.mock(base_url=LOKI_TEST_URL) as loki:
        route = loki.get(f"{API}/query_range")
        if isinstance(answer, Exception):
            route.mock(side_effect=answer)
        else:
            route.mock(return_value=answer)
        async with client_for(app) as client:
            response = await client.get(f"{API}/query_range", params=QUERY, headers={"x-api-key": key})
    assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    assert response.json()["status"] == "error" and response.json()["message"]
    if status == 503:  # "try again later": clients need to know when
        assert int(response.headers["Retry-After"]) > 0
    if code == "loki_bad_request":
        assert "parse error" in response.json()["message"]  # Loki's words, as Grafana would show them


def test_only_encoding_flags_we_can_redact_pass() -> None:
    assert encoding_flags("categorize-labels") == "categorize-labels"
    assert encoding_flags(" categorize-labels , something-new") == "categorize-labels"
    assert encoding_flags("something-new") is None and encoding_flags(None) is None


async def test_loki_api_calls_share_the_loki_concurrency_gate(api_key: str) -> None:
    """Grafana's and logcli's calls count against LOKI_MAX_CONCURRENT_REQUESTS like every other
    Loki call: with every slot held they get 503 loki_busy, not a connection of their own."""
    from gateway.services.loki import LokiClient, LokiQueueFull
    from gateway.services.loki_passthrough import LokiPassthrough

    settings = make_settings(ai_monitoring_api_key=api_key, loki_max_concurrent_requests=1,
                             loki_queue_timeout_seconds=0.1)
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, settings)
        async with loki._gate.slot():
            with pytest.raises(LokiQueueFull):
                await LokiPassthrough(loki, settings).get("/loki/api/v1/labels", [], None)
