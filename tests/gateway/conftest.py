"""Shared gateway fixtures.

- `api_key`: a freshly generated full-access key (set as AI_MONITORING_API_KEY in `settings`).
- `settings`: GatewaySettings with that key, LOKI_URL=http://loki.test, a generous rate limit, no
  Redis, no services file. Derive variants with `settings.model_copy(update={...})`.
- `app`: create_app(settings).
- `client`: an `httpx.AsyncClient` on `httpx.ASGITransport(app)` with the app's lifespan running
  (so app.state.http / loki / cache exist), base_url http://gateway.test, NO key header set;
  pass `headers=auth_headers` (or your own) per request. Mock Loki with respx on
  http://loki.test (the shared client is a normal httpx.AsyncClient, so respx intercepts it).
- `auth_headers`: {"x-api-key": api_key}.
- `keys_file`: a KeysFile writing GATEWAY_API_KEYS_FILE entries; `keys_file.add(name, scopes,
  tenant=..., label_policy=..., expires_at=...)` returns the new key string.
- `client_for`: `async with client_for(app) as client:` for apps built with other settings.
- `trickling_server`: a port whose server answers 200, then one body byte every 50 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.security import generate_key, hash_key
from tests.gateway.incident import Incident, plant_incident
from tests.real_loki import RealLoki

LOKI_TEST_URL = "http://loki.test"
GATEWAY_TEST_URL = "http://gateway.test"
GENEROUS_RATE_LIMIT = "100000/minute"


@asynccontextmanager
async def running_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY_TEST_URL) as client,
    ):
        yield client


@dataclass
class KeysFile:
    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        name: str,
        scopes: list[str] | tuple[str, ...],
        *,
        tenant: str | None = None,
        label_policy: str | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        key = generate_key()
        entry: dict[str, Any] = {"name": name, "sha256": hash_key(key), "scopes": list(scopes)}
        if tenant is not None:
            entry["tenant"] = tenant
        if label_policy is not None:
            entry["label_policy"] = label_policy
        if expires_at is not None:
            entry["expires_at"] = expires_at.isoformat()
        self.entries.append(entry)
        self.path.write_text(yaml.safe_dump({"keys": self.entries}), encoding="utf-8")
        return key


def make_settings(**overrides: Any) -> GatewaySettings:
    """Settings isolated from the machine's environment except where overridden."""
    base: dict[str, Any] = {
        "ai_monitoring_api_key": None,
        "gateway_api_keys_file": None,
        "loki_url": LOKI_TEST_URL,
        "loki_tenant_id": None,
        "rate_limit": GENEROUS_RATE_LIMIT,
        "redis_url": None,
        "gateway_services_file": None,
        "prometheus_url": None,
        "alertmanager_url": None,
        "openai_api_key": None,
        "tail_max_seconds": 0.5,  # a live follow (GET .../tail) waits at most this unless a test asks more
    }
    base.update(overrides)
    return GatewaySettings(**base)


@pytest.fixture
def api_key() -> str:
    return generate_key()


@pytest.fixture
def auth_headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key}


@pytest.fixture
def settings(api_key: str) -> GatewaySettings:
    return make_settings(ai_monitoring_api_key=api_key)


@pytest.fixture
def app(settings: GatewaySettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(app) as client:
        yield client


@pytest.fixture
def client_for() -> Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]:
    return running_client


@pytest.fixture
def keys_file(tmp_path: Path) -> KeysFile:
    return KeysFile(tmp_path / "keys.yaml")


@pytest.fixture
async def trickling_server() -> AsyncIterator[int]:
    """Answers 200 and then sends its body one byte every 50 ms, for a minute."""

    async def trickle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1200\r\n\r\n")
        try:
            for _ in range(1200):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture(scope="module")
def incident(real_loki: RealLoki) -> Incident:
    """Issue 19's incident, planted in the real Loki once per test module."""
    return plant_incident(real_loki)


@pytest.fixture
async def agent(real_loki: RealLoki, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway on the real Loki, asked as an agent asks it: with one full-access key."""
    app = create_app(make_settings(ai_monitoring_api_key=api_key, loki_url=real_loki.url))
    async with running_client(app) as client:
        client.headers["x-api-key"] = api_key
        yield client
