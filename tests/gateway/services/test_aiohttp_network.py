"""The Loki pool's aiohttp transport reports a Loki that is down or drops the connection as
unreachable, and only a Loki that does not answer in time as a timeout: on real sockets, through
the transport alone and through the gateway (whose Loki pool runs on it in production)."""

from __future__ import annotations

import httpx
import pytest

import gateway.wiring
from gateway.main import create_app
from gateway.services.aiohttp_network import MappedAiohttpTransport
from tests.conftest import free_port
from tests.gateway.conftest import make_settings, running_client
from tests.gateway.live_servers import Behaviour, MisbehavingUpstream

TIMEOUT_SECONDS = 1.0
DROPPED: list[tuple[Behaviour, type[httpx.TransportError]]] = [
    ("hang_up", httpx.RemoteProtocolError),
    ("reset", httpx.ReadError),
    ("half_answer", httpx.ReadError),
]


async def get(url: str) -> None:
    async with httpx.AsyncClient(transport=MappedAiohttpTransport(), timeout=TIMEOUT_SECONDS) as client:
        await client.get(url + "/loki/api/v1/query_range", params={"query": '{source="gcs"}'})


async def test_a_refused_connection_is_a_connect_error() -> None:
    with pytest.raises(httpx.ConnectError) as raised:
        await get(f"http://127.0.0.1:{free_port()}")
    assert not isinstance(raised.value, httpx.TimeoutException)


@pytest.mark.parametrize(("behaviour", "error"), DROPPED)
async def test_a_dropped_connection_is_a_transport_error_not_a_timeout(
    behaviour: Behaviour, error: type[httpx.TransportError]
) -> None:
    with MisbehavingUpstream(behaviour) as upstream, pytest.raises(httpx.TransportError) as raised:
        await get(upstream.url)
    assert upstream.requests >= 1  # aiohttp sends an idempotent request again once on a dropped connection
    assert isinstance(raised.value, error), repr(raised.value)
    assert not isinstance(raised.value, httpx.TimeoutException), repr(raised.value)


async def test_a_silent_upstream_is_still_a_timeout() -> None:
    with MisbehavingUpstream("silent") as upstream, pytest.raises(httpx.TimeoutException):
        await get(upstream.url)


async def gateway_answer(loki_url: str, api_key: str, monkeypatch: pytest.MonkeyPatch) -> httpx.Response:
    # tests without the real Loki get httpcore for the Loki pool (tests/conftest.py); this one
    # checks the pool as it runs in production
    monkeypatch.setattr(gateway.wiring, "LOKI_NETWORK", MappedAiohttpTransport)
    settings = make_settings(ai_monitoring_api_key=api_key, loki_url=loki_url, cache_ttl_seconds=0,
                             loki_timeout_seconds=TIMEOUT_SECONDS)
    async with running_client(create_app(settings)) as client:
        return await client.get("/logs/gcs?bucket=demo-logs&hours=1", headers={"x-api-key": api_key})


@pytest.mark.parametrize("behaviour", [None, *(behaviour for behaviour, _ in DROPPED)])
async def test_the_gateway_answers_loki_unavailable_when_loki_is_down_or_drops_the_connection(
    behaviour: Behaviour | None, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`None`: nothing listens on Loki's port."""
    if behaviour is None:
        answer = await gateway_answer(f"http://127.0.0.1:{free_port()}", api_key, monkeypatch)
    else:
        with MisbehavingUpstream(behaviour) as upstream:
            answer = await gateway_answer(upstream.url, api_key, monkeypatch)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "loki_unavailable", error
    assert "LOKI_URL" in error["hint"]


async def test_the_gateway_answers_loki_timeout_when_loki_stays_silent(
    api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MisbehavingUpstream("silent") as upstream:
        answer = await gateway_answer(upstream.url, api_key, monkeypatch)
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "loki_timeout"
