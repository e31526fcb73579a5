"""The floor for bench/gateway_overhead.py and bench/real_loki_bench.py: the gateway's stack
(FastAPI under uvicorn, one shared httpx.AsyncClient over aiohttp like the gateway's Loki pool,
owned by the lifespan) doing nothing but pass Loki's query_range answer through as bytes. No auth,
no guardrails, no parsing, shaping or redaction: what any gateway built on this stack pays for
the extra hop alone.

    LOKI_URL=... uvicorn --factory --app-dir bench passthrough_app:create_app"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response

from gateway.services.aiohttp_network import MappedAiohttpTransport

QUERY_RANGE_PATH = "/loki/api/v1/query_range"


def create_app() -> FastAPI:
    loki_url = os.environ["LOKI_URL"].rstrip("/")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=10.0, transport=MappedAiohttpTransport()) as http:
            app.state.http = http
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/passthrough/query_range")
    async def query_range(request: Request) -> Response:
        answer = await request.app.state.http.get(
            loki_url + QUERY_RANGE_PATH, params=list(request.query_params.multi_items())
        )
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    return app
