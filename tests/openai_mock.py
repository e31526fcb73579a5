"""An OpenAI-compatible Chat Completions endpoint at the HTTP layer, for the openai 3.x SDK (which
runs on httpx2): pass `mock.http_client()` as the SDK's http_client. It records every request and
checks it against the wire format of https://platform.openai.com/docs/api-reference/chat/create:
POST {base_url}/chat/completions, `Authorization: Bearer <key>`, a JSON body with `model` and
`messages` (each with a `role` and string `content`).

Handlers do not raise on a bad request (the SDK would turn that into a connection error and
retry); they answer 400 and record the problem, and `assert_wire_format()` fails the test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx2

DEFAULT_BASE_URL = "http://llm.test/v1"
ROLES = {"system", "user", "assistant", "developer"}
_TEMPLATE_ID = re.compile(r'"id": "(T\d+)", "count": (\d+)')


@dataclass
class OpenAIMock:
    api_key: str
    base_url: str = DEFAULT_BASE_URL
    fail_with_status: int | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def completions_path(self) -> str:
        return httpx2.URL(self.base_url).path.rstrip("/") + "/chat/completions"

    def _check(self, request: httpx2.Request) -> dict[str, Any] | None:
        problems = []
        if request.method != "POST":
            problems.append(f"method {request.method}, expected POST")
        if request.url.path != self.completions_path:
            problems.append(f"path {request.url.path}, expected {self.completions_path}")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            problems.append("Authorization is not `Bearer <the configured key>`")
        if not request.headers.get("content-type", "").startswith("application/json"):
            problems.append("Content-Type is not application/json")
        try:
            body = json.loads(request.content)
        except ValueError:
            self.problems.append("body is not JSON")
            return None
        if not isinstance(body.get("model"), str) or not body["model"]:
            problems.append("`model` missing or not a string")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append("`messages` missing or empty")
        else:
            for message in messages:
                if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
                    problems.append(f"bad message {str(message)[:80]}")
        self.problems.extend(problems)
        return None if problems else body

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = self._check(request)
        if body is None:
            error = {"message": "bad request", "type": "invalid_request_error"}
            return httpx2.Response(400, json={"error": error})
        self.requests.append(body)
        if self.fail_with_status is not None:
            return httpx2.Response(
                self.fail_with_status,
                json={"error": {"message": "the model is overloaded", "type": "server_error"}},
            )
        prompt = "\n".join(m["content"] for m in body["messages"])
        cited = _TEMPLATE_ID.search(prompt)
        text = f"[{cited.group(1)}] occurred {cited.group(2)} times." if cited else "No evidence."
        return httpx2.Response(
            200,
            json={
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 12,
                          "total_tokens": len(prompt) // 4 + 12},
            },
        )

    def http_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))

    def sent_text(self) -> str:
        """Everything the model was sent, for leak checks."""
        return "\n".join(m["content"] for body in self.requests for m in body["messages"])

    def assert_wire_format(self) -> None:
        assert not self.problems, self.problems
