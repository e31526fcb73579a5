"""The tail WebSocket through a real uvicorn gateway and the real Loki: a session ends after its
line budget or its time, a refused handshake carries our error, and the query is checked before
any connection to Loki is opened."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from gateway.api.routes import loki_api
from gateway.main import create_app
from tests.gateway.gateway_server import serving
from tests.gateway.loki_api_data import LINES_PER_SOURCE, Keys, Planted, keys_for, leaks, plant
from tests.real_loki import RealLoki

RECEIVE_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Served:
    ws: str
    keys: Keys
    planted: Planted


@pytest.fixture(scope="module")
def served(real_loki: RealLoki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    keys = keys_for(real_loki, tmp_path_factory.mktemp("tail-keys"))
    planted = plant(real_loki)
    with serving(create_app(keys.settings)) as url:
        yield Served(url.replace("http://", "ws://") + "/loki/api/v1/tail", keys, planted)


def open_tail(served: Served, key: str, query: str, **params: str) -> ClientConnection:
    url = f"{served.ws}?{urlencode({'query': query, 'start': str(served.planted.start_ns), **params})}"
    return connect(url, additional_headers={"x-api-key": key}, open_timeout=RECEIVE_TIMEOUT_SECONDS)


def frames_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=RECEIVE_TIMEOUT_SECONDS)))
        except ConnectionClosed as closed:
            return frames, closed


def lines(frames: list[dict[str, Any]]) -> list[str]:
    return [v[1] for f in frames for s in f["streams"] for v in s["values"]]


def test_a_tail_session_ends_at_its_line_budget(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loki_api, "TAIL_MAX_LINES", 5)
    with open_tail(served, served.keys.full, f'{{run="{served.planted.run}"}}', limit="1000") as ws:
        frames, closed = frames_until_closed(ws)
    assert len(lines(frames)) == 5
    assert closed.rcvd is not None and closed.rcvd.code == 1000 and "line limit" in closed.rcvd.reason


def test_a_tail_session_ends_at_its_time_limit(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loki_api, "TAIL_MAX_SECONDS", 4.0)
    with open_tail(served, served.keys.gcs, f'{{run="{served.planted.run}"}}', limit="1000") as ws:
        frames, closed = frames_until_closed(ws)
    assert len(lines(frames)) == LINES_PER_SOURCE and not leaks(json.dumps(frames))
    assert closed.rcvd is not None and "time limit" in closed.rcvd.reason


@pytest.mark.parametrize(
    ("key_name", "query", "params", "status", "code"),
    [
        ("full", '{run=~".*"}', {}, 400, "query_too_broad"),
        ("full", '{source="gcs"} |= ', {}, 400, "loki_bad_request"),  # Loki refuses it: its words pass on
        ("full", '{source="gcs"}', {"delay_for": "60"}, 400, "invalid_parameter"),
        ("full", '{source="gcs"}', {"delay_for": "\u00b2"}, 400, "invalid_parameter"),  # isdigit, not int
        ("full", '{source="gcs"}', {"start": "yesterday"}, 400, "invalid_time"),
        ("full", '{source="gcs"}', {"limit": "999999"}, 400, "limit_too_large"),
        ("no_logs", '{source="gcs"}', {}, 403, "insufficient_scope"),
        ("wrong", '{source="gcs"}', {}, 401, "invalid_api_key"),
    ],
)
def test_a_refused_tail_is_an_http_error_at_the_handshake(
    served: Served, key_name: str, query: str, params: dict[str, str], status: int, code: str
) -> None:
    key = getattr(served.keys, key_name, "gwk_wrong-wrong-wrong-wrong")
    with pytest.raises(InvalidStatus) as refused:
        open_tail(served, key, query, **params)
    response = refused.value.response
    assert response.status_code == status
    assert json.loads(response.body or b"{}")["error"]["code"] == code


def test_a_key_holds_a_bounded_number_of_tails(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tail holds one of Loki's per-tenant tail slots: a key gets a few, then a 429, and a
    closed session gives its slot back."""
    monkeypatch.setattr(loki_api, "TAIL_MAX_SESSIONS_PER_KEY", 2)
    query = f'{{run="{served.planted.run}"}}'
    with open_tail(served, served.keys.gcs, query):
        with open_tail(served, served.keys.gcs, query):
            with pytest.raises(InvalidStatus) as refused:
                open_tail(served, served.keys.gcs, query)
            assert refused.value.response.status_code == 429
            assert int(refused.value.response.headers["Retry-After"]) > 0
            with open_tail(served, served.keys.full, query):
                pass  # another key is not affected
        deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
        while True:  # the server notices the close and frees the slot
            try:
                with open_tail(served, served.keys.gcs, query):
                    break
            except InvalidStatus:
                assert time.monotonic() < deadline, "the closed session's slot was not given back"
                time.sleep(0.1)
