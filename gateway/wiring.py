"""The app's one lifespan: builds every service into a `Gateway` (gateway.container), in the order
they need each other, and closes them in the reverse order."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from http.cookiejar import DefaultCookiePolicy

import httpx
from fastapi import FastAPI

from gateway.config import GatewaySettings
from gateway.container import AppConfig, Gateway, app_config, set_running
from gateway.mcp.server import session_manager
from gateway.security import Authenticator, build_rate_limiter
from gateway.services import redis_client
from gateway.services.aiohttp_network import MappedAiohttpTransport
from gateway.services.alerts import (
    AlertProcessor,
    AlertStore,
    Forwarder,
    GenericWebhookReceiver,
    MemoryAlertStore,
    Receiver,
    SlackReceiver,
    summarizer_context,
)
from gateway.services.alerts.redis_store import RedisAlertStore
from gateway.services.bounded_http import PoolGatedTransport
from gateway.services.cache import build_cache
from gateway.services.digest import DigestScheduler, claim_always, redis_claim
from gateway.services.events import LokiEventWriter
from gateway.services.llm import build_chat_model
from gateway.services.loki import LokiClient
from gateway.services.loki_health import LokiHealth
from gateway.services.loki_tail import TAIL_RETRY_AFTER_SECONDS, TailSessions
from gateway.services.redact import redact
from gateway.services.summarize import Summarizer
from gateway.services.tail import TailSlots

HTTP_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# connections in the Loki pool beyond LOKI_MAX_CONCURRENT_REQUESTS: readiness and liveness probes
LOKI_PROBE_CONNECTIONS = 4
_NS_PER_MINUTE = 60 * 1_000_000_000
# Loki's answers are the big ones (a 1,000-line page is ~200 KB): aiohttp's C parser reads them
# with ~0.9 ms less CPU a call than httpcore's pure-Python h11 (bench/gateway_stages.py, issue 16);
# its errors mapped as httpx's own transport maps them (gateway.services.aiohttp_network)
LOKI_NETWORK: Callable[..., httpx.AsyncBaseTransport] = MappedAiohttpTransport


def loki_pool_limits(settings: GatewaySettings) -> httpx.Limits:
    """Room for every call the gate lets through plus the probes, so no Loki call ever queues
    inside httpcore's pool (see gateway.services.bounded_http)."""
    size = settings.loki_max_concurrent_requests + LOKI_PROBE_CONNECTIONS
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


def http_client(
    transport: httpx.AsyncBaseTransport | None,
    limits: httpx.Limits,
    timeout: float,
    network: Callable[..., httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport,
) -> httpx.AsyncClient:
    """An httpx client over `transport` (tests) or `network`, gated at the pool's size."""
    # every request waits for a connection in the gate, never inside the transport's pool
    assert limits.max_connections is not None
    inner = transport or network(limits=limits)
    gated = PoolGatedTransport(inner, limits.max_connections)
    http = httpx.AsyncClient(transport=gated, timeout=timeout, follow_redirects=False)
    # shared by every caller: an upstream's Set-Cookie must never ride along on another
    # caller's proxied request, so the jar accepts no cookie at all
    http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return http


async def build_store(settings: GatewaySettings) -> AlertStore:
    """Redis when REDIS_URL is set (shared by replicas, kept across gateway restarts; answering
    yet or not: see redis_client), else memory."""
    client = await redis_client.connect(settings, "alert store")  # None without REDIS_URL
    if client is not None:
        return RedisAlertStore(client, settings.alerts_max_stored, max_bytes=settings.alerts_max_bytes)
    return MemoryAlertStore(settings.alerts_max_stored, max_bytes=settings.alerts_max_bytes)


def build_alerts(
    settings: GatewaySettings, store: AlertStore, http: httpx.AsyncClient, summarizer: Summarizer
) -> AlertProcessor:
    receivers: list[Receiver] = []
    if settings.alert_slack_webhook_url:
        receivers.append(SlackReceiver(settings.alert_slack_webhook_url.get_secret_value()))
    if settings.alert_forward_webhook_url:
        receivers.append(GenericWebhookReceiver(settings.alert_forward_webhook_url.get_secret_value()))
    return AlertProcessor(
        store,
        LokiEventWriter(http, settings.loki_url, settings.loki_tenant_id),
        Forwarder(http, receivers),
        # cached (summarizer): Alertmanager repeats a firing notification every repeat_interval,
        # and the context window (around startsAt) is the same each time
        summarizer_context(summarizer),
    )


async def start_digest(
    stack: AsyncExitStack, settings: GatewaySettings, summarizer: Summarizer, http: httpx.AsyncClient
) -> DigestScheduler | None:
    """The periodic digest when SUMMARY_DIGEST_INTERVAL_MINUTES is set; stopped with `stack`."""
    interval_minutes = settings.summary_digest_interval_minutes
    if interval_minutes <= 0:
        return None
    claims = await redis_client.connect(settings, "digest claims")  # None without REDIS_URL
    if claims is not None:
        stack.push_async_callback(claims.aclose)
    scheduler = DigestScheduler(
        summarizer.summarize,
        LokiEventWriter(http, settings.loki_url, settings.loki_tenant_id),
        interval_minutes=interval_minutes,
        claim=redis_claim(claims, interval_minutes * _NS_PER_MINUTE) if claims else claim_always,
    )
    scheduler.start()
    stack.push_async_callback(scheduler.stop)
    return scheduler


async def build_gateway(stack: AsyncExitStack, config: AppConfig) -> Gateway:
    """Every service, each one's closing pushed onto `stack` as it is built."""
    settings = config.settings
    # Loki's queries get a pool of their own, sized to their concurrency bound: proxies, probes
    # and forwards on the shared pool can then never make a Loki call wait for a connection
    http = await stack.enter_async_context(
        http_client(config.http_transport, HTTP_POOL_LIMITS, settings.loki_timeout_seconds)
    )
    loki_limits = loki_pool_limits(settings)
    loki_http = await stack.enter_async_context(
        http_client(config.http_transport, loki_limits, settings.loki_timeout_seconds, LOKI_NETWORK)
    )
    loki = LokiClient(loki_http, settings)
    loki_health = LokiHealth(loki, settings.probe_timeout_seconds)
    stack.push_async_callback(loki_health.close)
    cache = await build_cache(settings)
    stack.push_async_callback(cache.close)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    chat_model = build_chat_model(
        api_key=key,
        model=settings.openai_model,
        base_url=settings.openai_base_url,
        timeout_seconds=settings.openai_timeout_seconds,
        http_client=config.llm_http_client,
    )
    if chat_model is not None:
        stack.push_async_callback(chat_model.aclose)
    summarizer = Summarizer(
        loki, redact, chat_model, cache=cache, cache_ttl_seconds=settings.summary_cache_ttl_seconds
    )
    store = await build_store(settings)
    stack.push_async_callback(store.close)
    # the digest reads every window once: it shares the model, not the answer cache
    digest = await start_digest(stack, settings, Summarizer(loki, redact, chat_model), http)
    return Gateway(
        settings=settings,
        upstreams=config.upstreams,
        http=http,
        loki=loki,
        loki_health=loki_health,
        cache=cache,
        authenticator=Authenticator(config.keys, await build_rate_limiter(settings)),
        chat_model=chat_model,
        summarizer=summarizer,
        alerts=build_alerts(settings, store, http, summarizer),
        digest=digest,
        tail_slots=TailSlots(settings.tail_max_per_key),
        loki_tail_sessions=TailSessions(TAIL_RETRY_AFTER_SECONDS),
        mcp=await stack.enter_async_context(session_manager(settings)),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        gateway = await build_gateway(stack, app_config(app))
        set_running(app, gateway)
        stack.callback(set_running, app, None)  # first thing on the way out: requests get a 503
        # what exists now lives as long as the app: keep it out of the collector's full passes,
        # which otherwise pause a request for 70-100 ms every ~140 requests
        gc.collect()
        gc.freeze()
        yield
