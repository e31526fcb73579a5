"""Monitored services: loading the allow-list, health probes, and the guarded GET proxy to a
service's monitoring prefix (no absolute URLs, no `..` escapes, no off-origin redirects, bounded
response size, only the service's own credentials sent)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import yaml
from pydantic import TypeAdapter, ValidationError

from gateway.config import UpstreamService
from gateway.metrics import UPSTREAM_ERRORS
from gateway.security import GatewayConfigError
from gateway.services.bounded_http import request_within
from gateway.services.errors import BadInput, NotFound, ServiceError, UpstreamError, UpstreamTimeout

MAX_REDIRECTS = 3
MAX_DECODE_ROUNDS = 3  # more nested percent-encoding than this is refused outright
ERROR_TEXT_MAX_CHARS = 200
PROXIED_RESPONSE_HEADERS = ("content-type", "cache-control", "last-modified", "etag")

_services_adapter = TypeAdapter(list[UpstreamService])


def load_services(path: Path | None) -> dict[str, UpstreamService]:
    """GATEWAY_SERVICES_FILE: a YAML list of services (or a mapping with a `services:` list)."""
    if path is None:
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw = document.get("services") if isinstance(document, dict) else document
        services = _services_adapter.validate_python(raw or [])
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise GatewayConfigError(f"GATEWAY_SERVICES_FILE {path} is invalid: {exc}") from exc
    by_name: dict[str, UpstreamService] = {}
    for service in services:
        if service.name in by_name:
            raise GatewayConfigError(f"GATEWAY_SERVICES_FILE {path}: duplicate name {service.name!r}")
        by_name[service.name] = service
    return by_name


def service_headers(service: UpstreamService) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in service.headers.items()}


@dataclass(frozen=True)
class ProbeResult:
    name: str
    status: str  # "up" | "down"
    http_status: int | None
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def probe(
    http: httpx.AsyncClient,
    name: str,
    url: str,
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
) -> ProbeResult:
    """GET `url`; "up" on 2xx. Never raises: a failure is a "down" result with the reason."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        response = await request_within(
            http, "GET", url, timeout_seconds, headers=headers or {}, follow_redirects=False
        )
    except httpx.TimeoutException:
        UPSTREAM_ERRORS.labels(upstream=name, kind="timeout").inc()
        return ProbeResult(name, "down", None, elapsed(), f"timed out after {timeout_seconds} s")
    except httpx.HTTPError as exc:
        UPSTREAM_ERRORS.labels(upstream=name, kind="connect").inc()
        reason = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX_CHARS]
        return ProbeResult(name, "down", None, elapsed(), reason)
    if response.is_success:
        return ProbeResult(name, "up", response.status_code, elapsed())
    UPSTREAM_ERRORS.labels(upstream=name, kind="status").inc()
    return ProbeResult(name, "down", response.status_code, elapsed(), f"HTTP {response.status_code}")


async def probe_service(http: httpx.AsyncClient, service: UpstreamService) -> ProbeResult:
    url = service.base_url.rstrip("/") + "/" + service.health_path.lstrip("/")
    return await probe(http, service.name, url, service.timeout_seconds, service_headers(service))


async def probe_all(http: httpx.AsyncClient, services: list[UpstreamService]) -> list[ProbeResult]:
    return list(await asyncio.gather(*(probe_service(http, s) for s in services)))


def _bad_path(message: str) -> BadInput:
    return BadInput(
        "invalid_proxy_path",
        message,
        "give a relative path below the service's monitoring prefix, e.g. /api/monitoring/<service>/metrics",
    )


def _fully_decoded(path: str) -> str:
    decoded = path
    for _ in range(MAX_DECODE_ROUNDS):
        once_more = unquote(decoded)
        if once_more == decoded:
            return decoded
        decoded = once_more
    raise _bad_path("the path is percent-encoded too many times")


def proxy_root(service: UpstreamService) -> httpx.URL:
    """The service's monitoring prefix as a URL; every proxied URL must stay below it."""
    if service.monitoring_prefix is None:
        raise NotFound(
            "service_not_proxied",
            f"service {service.name!r} has no monitoring prefix",
            "only services with a monitoring_prefix in GATEWAY_SERVICES_FILE can be proxied",
        )
    base = httpx.URL(service.base_url)
    prefix = service.monitoring_prefix.strip("/")
    root_path = base.path.rstrip("/") + ("/" + prefix if prefix else "")
    return base.copy_with(path=root_path or "/", query=None, fragment=None)


def _has_dot_segment(path: str) -> bool:
    """`.`/`..` segments, also with a `;parameter` (Tomcat and others treat `..;x` as `..`)."""
    return any(segment.partition(";")[0] in {".", ".."} for segment in path.split("/"))


def within_root(url: httpx.URL, root: httpx.URL) -> bool:
    if (url.scheme, url.host, url.port) != (root.scheme, root.host, root.port):
        return False
    # url.path is percent-decoded: a redirect to /prefix/%2e%2e/x must not pass as "below"
    if _has_dot_segment(url.path):
        return False
    root_path = root.path.rstrip("/")
    return url.path == root_path or url.path.startswith(root_path + "/") or root_path == ""


def proxy_url(service: UpstreamService, path: str, query: bytes = b"") -> httpx.URL:
    """The upstream URL for a caller-given relative `path`, or BadInput for any escape."""
    root = proxy_root(service)
    decoded = _fully_decoded(path)
    if any(ord(char) < 0x20 or char in "\\\x7f" for char in decoded):
        raise _bad_path("the path contains control characters or backslashes")
    if decoded.startswith("/") or "://" in decoded or decoded.lower().startswith(("http:", "https:")):
        raise _bad_path("absolute URLs and protocol-relative paths are not allowed")
    if _has_dot_segment(decoded):
        raise _bad_path("'.' and '..' path segments are not allowed")
    try:
        target = root.copy_with(path=root.path.rstrip("/") + "/" + path, query=query or None)
    except httpx.InvalidURL as exc:  # e.g. a `?` or `#` that was percent-encoded in the request
        raise _bad_path("the path contains characters that cannot appear in a URL path") from exc
    if not within_root(target, root):
        raise _bad_path("the path leaves the service's monitoring prefix")
    return target


@dataclass(frozen=True)
class ProxiedResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _upstream_error(
    service: str, kind: str, failure: type[ServiceError], code: str, message: str, hint: str
) -> ServiceError:
    UPSTREAM_ERRORS.labels(upstream=service, kind=kind).inc()
    return failure(code, message, hint)


async def _read_bounded(response: httpx.Response, service: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _upstream_error(
            service,
            "too_large",
            UpstreamError,
            "upstream_response_too_large",
            f"{service} answered {declared} bytes, more than the {max_bytes} allowed",
            "ask for a narrower monitoring path",
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise _upstream_error(
                service,
                "too_large",
                UpstreamError,
                "upstream_response_too_large",
                f"{service} answered more than the {max_bytes} bytes allowed",
                "ask for a narrower monitoring path",
            )
    return bytes(body)


async def proxy_get(
    http: httpx.AsyncClient, service: UpstreamService, path: str, query: bytes, max_bytes: int
) -> ProxiedResponse:
    """GET below the service's monitoring prefix. Redirects are followed only while they stay
    below the same prefix on the same origin; upstream 5xx → 502, timeout → 504. The service's
    timeout_seconds bounds the whole exchange (redirects and body included), so an upstream that
    drips its answer cannot hold a request longer than that. Only body reads are cancelled at
    the deadline; each send is bounded by httpx's own timeouts, because cancelling a request that
    waits in the shared pool can leak its connection for good (see gateway.services.bounded_http)."""
    deadline = asyncio.get_running_loop().time() + service.timeout_seconds
    return await _proxy_exchange(http, service, path, query, max_bytes, deadline)


def _timeout_error(service: UpstreamService) -> ServiceError:
    return _upstream_error(
        service.name,
        "timeout",
        UpstreamTimeout,
        "upstream_timeout",
        f"{service.name} did not answer within {service.timeout_seconds} s",
        "retry later or raise the service's timeout_seconds",
    )


async def _proxy_exchange(
    http: httpx.AsyncClient,
    service: UpstreamService,
    path: str,
    query: bytes,
    max_bytes: int,
    deadline: float,
) -> ProxiedResponse:
    root = proxy_root(service)
    url = proxy_url(service, path, query)
    exchange = _Exchange(http, service, root, service_headers(service), max_bytes, deadline)
    for _ in range(MAX_REDIRECTS + 1):
        outcome = await exchange.send(url)
        if isinstance(outcome, ProxiedResponse):
            return outcome
        url = outcome
    raise _upstream_error(
        service.name,
        "redirect",
        UpstreamError,
        "upstream_redirect_loop",
        f"{service.name} redirected more than {MAX_REDIRECTS} times",
        "check the service's path",
    )


@dataclass(frozen=True)
class _Exchange:
    """The GETs of one proxied request (the first and its redirects), under one deadline."""

    http: httpx.AsyncClient
    service: UpstreamService
    root: httpx.URL
    headers: dict[str, str]
    max_bytes: int
    deadline: float

    async def send(self, url: httpx.URL) -> ProxiedResponse | httpx.URL:
        """One GET: the service's answer, or where it redirects to (below the prefix)."""
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _timeout_error(self.service)
        try:
            async with self.http.stream(
                "GET", url, headers=self.headers, timeout=remaining, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    return self._redirect_target(url, response)
                return await self._answer(response)
        except httpx.TimeoutException as exc:
            raise _timeout_error(self.service) from exc
        except httpx.HTTPError as exc:
            raise _upstream_error(
                self.service.name,
                "connect",
                UpstreamError,
                "upstream_unreachable",
                f"{self.service.name} is unreachable: {type(exc).__name__}",
                "check that the service is running and its base_url",
            ) from exc

    def _redirect_target(self, url: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = url.join(response.headers.get("location", ""))
        if not within_root(location, self.root):
            raise _upstream_error(
                self.service.name,
                "redirect",
                UpstreamError,
                "upstream_redirect_refused",
                f"{self.service.name} redirected outside its monitoring prefix",
                "the gateway follows redirects only below the same service's prefix",
            )
        return location

    async def _answer(self, response: httpx.Response) -> ProxiedResponse:
        """The answer passed on: its status, the headers worth keeping and the body (bounded)."""
        if response.status_code >= 500:
            raise _upstream_error(
                self.service.name,
                "status",
                UpstreamError,
                "upstream_error",
                f"{self.service.name} answered HTTP {response.status_code}",
                "the service is failing; check its health with /api/monitoring/health/<service>",
            )
        try:
            async with asyncio.timeout(self.deadline - asyncio.get_running_loop().time()):
                body = await _read_bounded(response, self.service.name, self.max_bytes)
        except TimeoutError as exc:
            raise _timeout_error(self.service) from exc
        kept = {k: v for k, v in response.headers.items() if k.lower() in PROXIED_RESPONSE_HEADERS}
        return ProxiedResponse(response.status_code, kept, body)
