"""Overview, per-service health and the guarded proxy, against real HTTP servers on 127.0.0.1
(Loki alone is mocked with respx, asserting the exact query it receives)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import respx
import yaml
from fastapi import FastAPI
from limits.aio.storage import MemoryStorage

from gateway.config import UpstreamService
from gateway.errors import Failure, as_api_error
from gateway.main import create_app
from gateway.metrics import REGISTRY
from gateway.security import GatewayConfigError, build_rate_limiter
from gateway.services.cache import MemoryCache, build_cache, cached
from gateway.services.overview import ERROR_COUNTS_QUERY
from gateway.services.upstreams import load_services, probe, proxy_url
from tests.conftest import free_port
from tests.gateway.conftest import LOKI_TEST_URL, KeysFile, make_settings
from tests.gateway.loki_answers import recorded_vector
from tests.real_loki import RealLoki

SERVICE_TOKEN = "svc-token-not-the-gateway-key"
MAX_PROXY_BYTES = 10_000
SLOW_SECONDS = 1.5
DRIP_SECONDS = 0.2  # between the pieces of a dripping answer: each read is quick, the whole is not

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Upstream:
    """A real HTTP server: path → reply (or a callable making one); records every request."""

    replies: dict[str, Reply | Callable[[], Reply]]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server: QuietServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client gave up (timeout tests): nothing to report


def _handler_for(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            upstream.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            reply = upstream.replies.get(urlsplit(self.path).path, (404, {}, b"not here"))
            status, headers, body = reply() if callable(reply) else reply
            chunks = body if isinstance(body, list) else [body]  # a list: sent a piece at a time
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(sum(len(chunk) for chunk in chunks)))
            self.end_headers()
            for index, chunk in enumerate(chunks):
                if index:
                    time.sleep(DRIP_SECONDS)
                self.wfile.write(chunk)
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def start_upstream() -> Iterator[Callable[[dict[str, Any]], Upstream]]:
    started: list[tuple[QuietServer, threading.Thread]] = []

    def start(replies: dict[str, Any]) -> Upstream:
        upstream = Upstream(replies)
        server = QuietServer(("127.0.0.1", 0), _handler_for(upstream))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        upstream.server = server
        started.append((server, thread))
        return upstream

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _slow() -> Reply:
    time.sleep(SLOW_SECONDS)
    return 200, {}, b"late"


@pytest.fixture
def upstreams(start_upstream: Callable[[dict[str, Any]], Upstream]) -> dict[str, Upstream]:
    api = start_upstream(
        {
            "/healthz": (200, {}, b"ok"),
            "/monitoring/metrics": (200, {"Content-Type": "text/plain; version=0.0.4"}, b"up 1\n"),
            "/monitoring/login": (200, {"Set-Cookie": "session=of-the-first-caller; Path=/"}, b"hi"),
            "/monitoring/big": (200, {}, b"x" * (MAX_PROXY_BYTES + 1)),
            "/monitoring/fail": (500, {}, b"boom"),
            "/monitoring/slow": _slow,
            "/monitoring/drip": (200, {}, [b"x"] * 8),
            "/monitoring/missing": (404, {"Content-Type": "text/plain"}, b"no such page"),
            "/monitoring/redirect-in": (302, {"Location": "/monitoring/metrics"}, b""),
            "/monitoring/redirect-up": (302, {"Location": "/secret"}, b""),
            "/monitoring/redirect-out": (302, {"Location": "http://evil.example/steal"}, b""),
            "/monitoring/redirect-encoded": (302, {"Location": "/monitoring/%2e%2e/secret"}, b""),
            "/secret": (200, {}, b"SECRET outside the monitoring prefix"),
        }
    )
    sick = start_upstream({"/health": (503, {}, b"not ready")})
    prometheus = start_upstream({"/-/ready": (200, {}, b"Prometheus Server is Ready.")})
    return {"api": api, "sick": sick, "prometheus": prometheus}


@pytest.fixture
def services_file(tmp_path: Path, upstreams: dict[str, Upstream]) -> Path:
    services = [
        {
            "name": "api",
            "base_url": upstreams["api"].base_url,
            "health_path": "/healthz",
            "monitoring_prefix": "/monitoring",
            "headers": {"Authorization": f"Bearer {SERVICE_TOKEN}"},
            "timeout_seconds": 0.5,
        },
        {"name": "sick", "base_url": upstreams["sick"].base_url, "timeout_seconds": 1},
        {"name": "down", "base_url": f"http://127.0.0.1:{free_port()}", "monitoring_prefix": "/m"},
    ]
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


@pytest.fixture
def monitoring_app(api_key: str, services_file: Path, upstreams: dict[str, Upstream]) -> FastAPI:
    return create_app(
        make_settings(
            ai_monitoring_api_key=api_key,
            gateway_services_file=services_file,
            prometheus_url=upstreams["prometheus"].base_url,
            proxy_max_response_bytes=MAX_PROXY_BYTES,
            overview_cache_ttl_seconds=60,
        )
    )


@pytest.fixture
def loki() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        mock.get(f"{LOKI_TEST_URL}/ready").mock(return_value=httpx.Response(200, text="ready"))
        mock.get(f"{LOKI_TEST_URL}/loki/api/v1/query", name="query").mock(
            return_value=recorded_vector(
                [
                    {"metric": {"source": "gcs"}, "value": [1767225600, "3"]},
                    {"metric": {"source": "pod"}, "value": [1767225600, "1"]},
                ]
            )
        )
        yield mock


async def test_overview_reports_each_service_ops_and_error_counts(
    monitoring_app: FastAPI, auth_headers: dict[str, str], upstreams: dict[str, Upstream],
    loki: respx.MockRouter, client_for: Callable[..., Any],
) -> None:
    async with client_for(monitoring_app) as client:
        response = await client.get("/api/monitoring/overview", headers=auth_headers)
        again = await client.get("/api/monitoring/overview", headers=auth_headers)
    assert response.status_code == 200
    body = response.json()
    services = {s["name"]: s for s in body["services"]}
    assert services["api"]["status"] == "up" and services["api"]["http_status"] == 200
    assert services["sick"]["status"] == "down" and services["sick"]["http_status"] == 503
    assert services["down"]["status"] == "down" and services["down"]["http_status"] is None
    assert "ConnectError" in services["down"]["error"]
    assert body["ops"]["loki"]["status"] == "up"
    assert body["ops"]["prometheus"]["status"] == "up"
    assert "alertmanager" not in body["ops"]  # not configured
    assert body["status"] == "degraded"
    errors = body["errors_last_hour"]
    assert errors == {"available": True, "error": None, "by_source": {"gcs": 3.0, "pod": 1.0}}

    sent = loki["query"].calls.last.request
    assert sent.url.params["query"] == ERROR_COUNTS_QUERY
    assert again.json() == body  # served from the TTL cache
    assert upstreams["api"].paths() == ["/healthz"]
    assert loki["query"].call_count == 1


async def test_overview_survives_loki_down(
    api_key: str, services_file: Path, client_for: Callable[..., Any]
) -> None:
    app = create_app(
        make_settings(
            ai_monitoring_api_key=api_key, gateway_services_file=services_file,
            loki_url=f"http://127.0.0.1:{free_port()}", overview_cache_ttl_seconds=0,
        )
    )
    async with client_for(app) as client:
        response = await client.get("/api/monitoring/overview", headers={"x-api-key": api_key})
    body = response.json()
    assert response.status_code == 200
    assert body["ops"]["loki"]["status"] == "down"
    assert body["errors_last_hour"]["available"] is False
    assert body["errors_last_hour"]["error"]


async def test_overview_survives_a_malformed_loki_answer(
    monitoring_app: FastAPI, auth_headers: dict[str, str], loki: respx.MockRouter,
    client_for: Callable[..., Any],
) -> None:
    junk = {"resultType": "vector", "result": [{"metric": {"source": "gcs"}, "value": "3"}]}
    loki["query"].mock(return_value=httpx.Response(200, json={"status": "success", "data": junk}))
    async with client_for(monitoring_app) as client:
        response = await client.get("/api/monitoring/overview", headers=auth_headers)
    assert response.status_code == 200
    assert response.json()["errors_last_hour"]["available"] is False


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "1e400"])
async def test_overview_counts_no_errors_from_a_sample_that_is_no_number(
    monitoring_app: FastAPI, auth_headers: dict[str, str], loki: respx.MockRouter,
    client_for: Callable[..., Any], value: str,
) -> None:
    gcs, pod = ({"source": name, "service_name": service, "window": "current"}
                for name, service in (("gcs", "trades"), ("pod", "api")))
    loki["query"].mock(return_value=recorded_vector([
        {"metric": gcs, "value": [1767225600, value]}, {"metric": pod, "value": [1767225600, "2"]},
    ]))
    async with client_for(monitoring_app) as client:
        response = await client.get("/api/monitoring/overview", headers=auth_headers)
    assert response.status_code == 200, response.text
    assert response.json()["errors_last_hour"]["by_source"] == {"pod": 2.0}


STREAMS_QUERY, METRIC_QUERY = '{source="gcs"}', 'sum(count_over_time({source="gcs"}[1m]))'


@pytest.mark.parametrize(("path", "route", "query", "answer"), [
    ("index/stats", "stats", STREAMS_QUERY, {"streams": 1, "bytes": "lots"}),
    ("index/stats", "stats", STREAMS_QUERY, {"bytes": [1]}),
    ("query_range", "query_range", STREAMS_QUERY, {"status": "success", "data": {
        "resultType": "streams",
        "result": [{"stream": {"source": "gcs"}, "values": [["99999999999999999999999999999", "x"]]}]}}),
    ("query_range", "query_range", METRIC_QUERY, {"status": "success", "data": {
        "resultType": "matrix", "result": [{"metric": {"source": 1}, "values": [[1767225600, "3"]]}]}}),
])
async def test_a_loki_answer_of_the_wrong_shape_is_a_502_not_a_500(
    monitoring_app: FastAPI, auth_headers: dict[str, str], loki: respx.MockRouter,
    client_for: Callable[..., Any], path: str, route: str, query: str, answer: dict[str, Any],
) -> None:
    loki.get(f"{LOKI_TEST_URL}/loki/api/v1/{path}").mock(return_value=httpx.Response(200, json=answer))
    async with client_for(monitoring_app) as client:
        response = await client.get(f"/api/monitoring/logs/{route}", params={"query": query},
                                    headers=auth_headers)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "loki_error"


@pytest.mark.parametrize(("query", "answer"), [
    ('{source="gcs"}', {"status": "success", "data": {"resultType": "streams", "stats": "x", "result": [
        {"stream": {"source": "gcs"}, "values": [["1767225600000000000", "line"]]}]}}),
])
async def test_a_loki_log_answer_with_odd_stats_still_answers(
    monitoring_app: FastAPI, auth_headers: dict[str, str], loki: respx.MockRouter,
    client_for: Callable[..., Any], query: str, answer: dict[str, Any],
) -> None:
    loki.get(f"{LOKI_TEST_URL}/loki/api/v1/query_range").mock(return_value=httpx.Response(200, json=answer))
    async with client_for(monitoring_app) as client:
        response = await client.get("/api/monitoring/logs/query_range", params={"query": query},
                                    headers=auth_headers)
    assert response.status_code == 200, response.text


async def test_health_of_one_service(
    monitoring_app: FastAPI, auth_headers: dict[str, str], client_for: Callable[..., Any]
) -> None:
    async with client_for(monitoring_app) as client:
        up = await client.get("/api/monitoring/health/api", headers=auth_headers)
        sick = await client.get("/api/monitoring/health/sick", headers=auth_headers)
        unknown = await client.get("/api/monitoring/health/nope", headers=auth_headers)
    assert up.json()["status"] == "up"
    assert (sick.json()["status"], sick.json()["http_status"]) == ("down", 503)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_service"


async def test_proxy_forwards_get_with_the_service_credentials_only(
    monitoring_app: FastAPI, api_key: str, upstreams: dict[str, Upstream], client_for: Callable[..., Any]
) -> None:
    async with client_for(monitoring_app) as client:
        response = await client.get(
            "/api/monitoring/api/metrics?format=text&x=1",
            headers={"authorization": f"Bearer {api_key}", "x-api-key": api_key, "cookie": "s=1"},
        )
    assert response.status_code == 200
    assert response.text == "up 1\n"
    assert response.headers["content-type"] == "text/plain; version=0.0.4"
    path, headers = upstreams["api"].requests[-1]
    assert path == "/monitoring/metrics?format=text&x=1"
    assert headers["authorization"] == f"Bearer {SERVICE_TOKEN}"
    assert "x-api-key" not in headers and "cookie" not in headers
    assert api_key not in json.dumps(headers)


async def test_an_upstream_cookie_never_reaches_the_next_caller(
    monitoring_app: FastAPI, auth_headers: dict[str, str], upstreams: dict[str, Upstream],
    client_for: Callable[..., Any],
) -> None:
    async with client_for(monitoring_app) as client:
        assert (await client.get("/api/monitoring/api/login", headers=auth_headers)).status_code == 200
        assert (await client.get("/api/monitoring/api/metrics", headers=auth_headers)).status_code == 200
    path, headers = upstreams["api"].requests[-1]
    assert path == "/monitoring/metrics"
    assert "cookie" not in headers, headers["cookie"]


async def _raw_get(app: FastAPI, raw_path: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send a path exactly as given (httpx would normalise `..` away before sending)."""
    path, _, query = raw_path.partition(b"?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": unquote(path.decode("latin-1")), "raw_path": path,
        "query_string": query, "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("gateway.test", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    status = 0
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(scope, receive, send)
    return status, body


@pytest.mark.parametrize(
    ("raw_path", "status", "code"),
    [
        (b"/api/monitoring/api/../secret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/%2e%2e/secret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/%2E%2E%2Fsecret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/%252e%252e/secret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/metrics/..%5c..%5csecret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/http://evil.host/x", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api//evil.host/x", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/%2f%2fevil.host/x", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/./metrics", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/metrics/..;/..;/secret", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/metrics%3Fx=1", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/metrics%23frag", 400, b"invalid_proxy_path"),
        (b"/api/monitoring/api/redirect-encoded", 502, b"upstream_redirect_refused"),
        (b"/api/monitoring/api/redirect-out", 502, b"upstream_redirect_refused"),
        (b"/api/monitoring/api/redirect-up", 502, b"upstream_redirect_refused"),
        (b"/api/monitoring/nope/metrics", 404, b"unknown_service"),
        (b"/api/monitoring/sick/health", 404, b"service_not_proxied"),
    ],
)
async def test_proxy_refuses_ssrf_attempts(
    raw_path: bytes, status: int, code: bytes, monitoring_app: FastAPI, api_key: str,
    upstreams: dict[str, Upstream], client_for: Callable[..., Any],
) -> None:
    async with client_for(monitoring_app):
        got_status, body = await _raw_get(monitoring_app, raw_path, {"x-api-key": api_key})
    assert (got_status, json.loads(body)["error"]["code"].encode()) == (status, code)
    assert "/secret" not in upstreams["api"].paths()
    assert not any("evil" in p or "secret" in p for p in upstreams["api"].paths())


@pytest.mark.parametrize(
    ("path", "status", "code", "kind"),
    [
        ("fail", 502, "upstream_error", "status"),
        ("slow", 504, "upstream_timeout", "timeout"),
        ("drip", 504, "upstream_timeout", "timeout"),
        ("big", 502, "upstream_response_too_large", "too_large"),
    ],
)
async def test_proxy_upstream_failures_become_envelopes(
    path: str, status: int, code: str, kind: str, monitoring_app: FastAPI,
    auth_headers: dict[str, str], client_for: Callable[..., Any],
) -> None:
    labels = {"upstream": "api", "kind": kind}
    before = REGISTRY.get_sample_value("gateway_upstream_errors_total", labels) or 0.0
    async with client_for(monitoring_app) as client:
        response = await client.get(f"/api/monitoring/api/{path}", headers=auth_headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["hint"]
    assert REGISTRY.get_sample_value("gateway_upstream_errors_total", labels) == before + 1


async def test_proxy_unreachable_service_is_502(
    monitoring_app: FastAPI, auth_headers: dict[str, str], client_for: Callable[..., Any]
) -> None:
    async with client_for(monitoring_app) as client:
        response = await client.get("/api/monitoring/down/metrics", headers=auth_headers)
    assert (response.status_code, response.json()["error"]["code"]) == (502, "upstream_unreachable")


async def test_proxy_follows_redirects_inside_the_prefix_and_passes_4xx(
    monitoring_app: FastAPI, auth_headers: dict[str, str], upstreams: dict[str, Upstream],
    client_for: Callable[..., Any],
) -> None:
    async with client_for(monitoring_app) as client:
        followed = await client.get("/api/monitoring/api/redirect-in", headers=auth_headers)
        missing = await client.get("/api/monitoring/api/missing", headers=auth_headers)
        posted = await client.post("/api/monitoring/api/metrics", headers=auth_headers)
    assert (followed.status_code, followed.text) == (200, "up 1\n")
    assert upstreams["api"].paths()[:2] == ["/monitoring/redirect-in", "/monitoring/metrics"]
    assert (missing.status_code, missing.text) == (404, "no such page")
    assert posted.status_code == 405


@pytest.mark.parametrize(
    ("base_url", "prefix", "path", "expected"),
    [
        ("http://svc:9000", "/monitoring", "metrics", "http://svc:9000/monitoring/metrics"),
        ("http://svc:9000/app/", "/monitoring/", "a/b", "http://svc:9000/app/monitoring/a/b"),
        ("http://svc:9000", "/", "metrics", "http://svc:9000/metrics"),
        ("https://svc", "/m", "", "https://svc/m/"),
    ],
)
def test_proxy_url_stays_below_the_prefix(base_url: str, prefix: str, path: str, expected: str) -> None:
    service = UpstreamService(name="svc", base_url=base_url, monitoring_prefix=prefix)
    assert str(proxy_url(service, path)) == expected


@pytest.mark.parametrize(
    "path",
    ["..", "a/../../b", "%2e%2e/b", "%25%32%65%25%32%65/b", "/etc/passwd", "//evil/x", "https:evil",
     "a\\..\\b", "a\x00b", "http://evil/x", "a/..;/b", "..;x/b", "metrics?x=1", "metrics#f"],
)
def test_proxy_url_rejects_escapes(path: str) -> None:
    service = UpstreamService(name="svc", base_url="http://svc:9000", monitoring_prefix="/monitoring")
    with pytest.raises(Failure) as raised:
        proxy_url(service, path)
    assert as_api_error(raised.value).status == 400


async def test_overview_error_counts_follow_the_keys_policy_and_tenant(
    keys_file: KeysFile, services_file: Path, loki: respx.MockRouter, client_for: Callable[..., Any]
) -> None:
    key = keys_file.add("gcs-only", ["monitoring:read"], tenant="team-a", label_policy='{source="gcs"}')
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, gateway_services_file=services_file))
    async with client_for(app) as client:
        response = await client.get("/api/monitoring/overview", headers={"x-api-key": key})
    assert response.status_code == 200
    sent = loki["query"].calls.last.request
    assert sent.headers["x-scope-orgid"] == "team-a"
    query = sent.url.params["query"]
    assert query != ERROR_COUNTS_QUERY
    assert 'source="gcs"' in query and 'level=~"error|critical"' in query


async def test_memory_cache_expires_and_evicts_least_recent() -> None:
    now = [100.0]
    cache = MemoryCache(max_entries=2, clock=lambda: now[0])
    await cache.set("a", {"v": 1}, ttl_seconds=5)
    await cache.set("b", 2, ttl_seconds=5)
    assert await cache.get("a") == {"v": 1}  # "a" is now the most recent
    await cache.set("c", 3, ttl_seconds=5)
    assert await cache.get("b") is None
    assert await cache.get("a") == {"v": 1}
    now[0] += 5
    assert await cache.get("a") is None
    await cache.set("zero", 1, ttl_seconds=0)
    assert await cache.get("zero") is None

    computed: list[int] = []

    async def compute() -> int:
        computed.append(1)
        return 42

    assert await cached(cache, "k", 5, compute) == 42
    assert await cached(cache, "k", 5, compute) == 42
    assert computed == [1]


async def test_an_unreachable_redis_degrades_requests_and_never_fails_them(api_key: str) -> None:
    """Not this process's memory (which would split the replicas' state): a miss, and an open
    rate limit, until Redis answers (tests/gateway/services/test_redis_backends.py starts one late)."""
    settings = make_settings(
        ai_monitoring_api_key=api_key, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit="1/minute"
    )
    cache = await build_cache(settings)
    try:
        assert await cached(cache, "k", 30, _forty_two) == 42
    finally:
        await cache.close()
    limiter = await build_rate_limiter(settings)
    assert not isinstance(limiter.storage, MemoryStorage)
    for _ in range(3):
        await limiter.check("k")  # over the limit of 1, but nothing counts: let through, logged


async def _forty_two() -> int:
    return 42


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ({"name": "a", "base_url": "file:///etc/passwd"}, "http"),
        ({"name": "a", "base_url": "http://user:pw@api:80"}, "credentials"),
        ({"name": "a", "base_url": "http://api", "monitoring_prefix": "/m/../.."}, "neither"),
        ({"name": "a", "base_url": "http://api", "health_path": "health"}, "start with /"),
        ({"name": "Bad Name", "base_url": "http://api"}, "name"),
    ],
)
def test_services_file_is_validated(tmp_path: Path, service: dict[str, str], problem: str) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump([service]))
    with pytest.raises(GatewayConfigError, match=problem):
        load_services(path)


def test_duplicate_service_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump([{"name": "a", "base_url": "http://x"}, {"name": "a", "base_url": "http://y"}]))
    with pytest.raises(GatewayConfigError, match="duplicate"):
        load_services(path)


async def test_a_probe_of_a_trickling_health_endpoint_ends_at_its_timeout(trickling_server: int) -> None:
    """Each byte comes well within the timeout; the bound on the whole exchange must end it."""
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        result = await probe(http, "slowpoke", f"http://127.0.0.1:{trickling_server}/health", 0.3)
    assert time.monotonic() - started < 2.0
    assert (result.status, result.error) == ("down", "timed out after 0.3 s")


async def test_health_of_the_ops_stack_listed_in_the_overview(
    real_loki: RealLoki, api_key: str, client_for: Callable[..., Any]
) -> None:
    app = create_app(make_settings(ai_monitoring_api_key=api_key, loki_url=real_loki.url))
    async with client_for(app) as client:
        loki = await client.get("/api/monitoring/health/loki", headers={"x-api-key": api_key})
        unset = await client.get("/api/monitoring/health/prometheus", headers={"x-api-key": api_key})
    assert loki.status_code == 200
    assert (loki.json()["name"], loki.json()["status"]) == ("loki", "up")
    assert unset.status_code == 404  # PROMETHEUS_URL is not set: the overview does not list it either
