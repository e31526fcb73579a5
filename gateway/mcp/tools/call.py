"""What a tool handler works with (`ToolCall`) and what describes a tool (`ToolSpec`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel
from starlette.requests import Request

from gateway.config import GatewaySettings
from gateway.container import Gateway
from gateway.security import Principal
from gateway.services.cache import Cache
from gateway.services.loki import LokiClient
from gateway.services.query import LogQueries


@dataclass(frozen=True)
class ToolCall:
    """What a handler works with: the app's services and the authenticated caller."""

    gateway: Gateway
    request: Request
    principal: Principal

    @property
    def settings(self) -> GatewaySettings:
        return self.gateway.settings

    @property
    def cache(self) -> Cache:
        return self.gateway.cache

    @property
    def loki(self) -> LokiClient:
        return self.gateway.loki

    @property
    def queries(self) -> LogQueries:
        return LogQueries(self.loki, self.settings, self.principal, self.cache)

    def key(self, tool: str, args: BaseModel) -> str:
        """The cache key of a tool's answer: per tool, arguments, tenant and policy."""
        material = json.dumps(
            [tool, args.model_dump(mode="json"), self.principal.tenant, self.principal.label_policy],
            sort_keys=True,
        )
        return "mcp:" + hashlib.sha256(material.encode()).hexdigest()

    async def cached(self, tool: str, args: BaseModel, compute: Callable[[], Awaitable[Any]]) -> Any:
        """`compute()`, cached like the REST answers."""
        return await self.queries.cached(self.key(tool, args), compute)


Handler = Callable[[ToolCall, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    scope: str
    title: str
    description: str
    args: type[BaseModel]
    handler: Handler

    def tool(self) -> Tool:
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.args.model_json_schema(),
            annotations=ToolAnnotations(
                title=self.title,
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        )


