"""The gateway's wiring in two typed parts: what `create_app` knows before anything runs
(`AppConfig`), and the services the lifespan builds and closes (`Gateway`, see gateway.wiring).
Routes reach them through gateway.api.deps, never through `app.state` directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import httpx2
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette

from gateway.config import GatewaySettings, UpstreamService
from gateway.security import Authenticator, KeyStore
from gateway.services.alerts import AlertProcessor
from gateway.services.cache import Cache
from gateway.services.digest import DigestScheduler
from gateway.services.llm import ChatModel
from gateway.services.loki import LokiClient
from gateway.services.loki_health import LokiHealth
from gateway.services.loki_tail import TailSessions
from gateway.services.summarize import Summarizer
from gateway.services.tail import TailSlots

_CONFIG = "gateway_config"
_RUNNING = "gateway"


@dataclass(frozen=True)
class AppConfig:
    """Settings and files read by create_app; `http_transport` and `llm_http_client` replace the
    network in tests."""

    settings: GatewaySettings
    keys: KeyStore
    upstreams: Mapping[str, UpstreamService]
    http_transport: httpx.AsyncBaseTransport | None = None
    llm_http_client: httpx2.AsyncClient | None = None


@dataclass(frozen=True)
class Gateway:
    """Every service the routes use, alive from the lifespan's start to its end."""

    settings: GatewaySettings
    upstreams: Mapping[str, UpstreamService]
    http: httpx.AsyncClient  # proxies, probes, receivers and event pushes
    loki: LokiClient  # Loki's queries, on a pool of their own
    loki_health: LokiHealth
    cache: Cache
    authenticator: Authenticator
    chat_model: ChatModel | None  # None without OPENAI_API_KEY
    summarizer: Summarizer  # cached, with chat_model: the summary route, MCP and alert context
    alerts: AlertProcessor
    digest: DigestScheduler | None  # None unless SUMMARY_DIGEST_INTERVAL_MINUTES > 0
    tail_slots: TailSlots  # follows per key (GET .../logs/tail and the MCP tool)
    loki_tail_sessions: TailSessions  # Loki-compatible WebSocket tails per key
    mcp: StreamableHTTPSessionManager | None  # running; None with MCP_ENABLED=false


def attach_config(app: Starlette, config: AppConfig) -> None:
    setattr(app.state, _CONFIG, config)


def app_config(app: Starlette) -> AppConfig:
    config = getattr(app.state, _CONFIG, None)
    if not isinstance(config, AppConfig):
        raise RuntimeError("not an app built by gateway.main.create_app")
    return config


def set_running(app: Starlette, gateway: Gateway | None) -> None:
    setattr(app.state, _RUNNING, gateway)


def running(app: Starlette) -> Gateway | None:
    """The app's services while its lifespan runs; None before and after."""
    gateway = getattr(app.state, _RUNNING, None)
    return gateway if isinstance(gateway, Gateway) else None
