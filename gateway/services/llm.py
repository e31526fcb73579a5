"""The chat model behind a tiny protocol; OpenAIChatModel speaks the Chat Completions API of
OpenAI or any compatible server (OPENAI_BASE_URL). Errors become ModelError at this boundary."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import httpx2
import openai

from gateway.metrics import UPSTREAM_ERRORS

UPSTREAM = "openai"  # the `upstream` label of gateway_upstream_errors_total
DEFAULT_MAX_RETRIES = 2


class ModelError(Exception):
    """The model could not answer; the message never contains credentials."""


@dataclass(frozen=True)
class ModelAnswer:
    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None

    def usage(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def _failed(kind: str, message: str) -> ModelError:
    UPSTREAM_ERRORS.labels(upstream=UPSTREAM, kind=kind).inc()
    return ModelError(message)


class ChatModel(Protocol):
    name: str

    async def complete(self, system: str, user: str, *, max_tokens: int) -> ModelAnswer: ...


class OpenAIChatModel:
    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_seconds: float = 30.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.name = model
        self._deadline_seconds = timeout_seconds  # the whole call: every read, every retry
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_seconds,
            max_retries=max_retries,
            http_client=http_client,
        )

    async def complete(self, system: str, user: str, *, max_tokens: int) -> ModelAnswer:
        try:
            # the SDK's timeout bounds each read, so an endpoint sending a byte now and then (or
            # silent through every retry) would hold the summary, or an alert's context, forever
            async with asyncio.timeout(self._deadline_seconds):
                response = await self._client.chat.completions.create(
                    model=self.name,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                    max_tokens=max_tokens,
                    temperature=0.1,
                )
            text = (response.choices[0].message.content or "").strip() if response.choices else ""
            usage = response.usage
            answer = ModelAnswer(
                text=text,
                model=response.model or self.name,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                total_tokens=usage.total_tokens if usage else None,
            )
        except TimeoutError as exc:
            message = f"model endpoint did not answer within {self._deadline_seconds:g} s"
            raise _failed("timeout", message) from exc
        except openai.APIStatusError as exc:
            raise _failed("status", f"model endpoint answered HTTP {exc.status_code}") from exc
        except openai.APITimeoutError as exc:
            raise _failed("timeout", "model endpoint timed out") from exc
        except openai.APIConnectionError as exc:
            raise _failed("connect", "model endpoint unreachable") from exc
        except openai.OpenAIError as exc:
            raise _failed("invalid_response", f"model call failed: {type(exc).__name__}") from exc
        # a "compatible" server or a proxy in front of it may answer 200 with HTML, invalid JSON or
        # another shape; the SDK does not validate, so that surfaces here as one of these
        except (AttributeError, TypeError, IndexError, ValueError) as exc:
            raise _failed("invalid_response", f"model answer unreadable: {type(exc).__name__}") from exc
        if not answer.text:
            raise _failed("invalid_response", "model returned an empty answer")
        return answer

    async def aclose(self) -> None:
        await self._client.close()


def build_chat_model(
    *,
    api_key: str | None,
    model: str,
    base_url: str | None,
    timeout_seconds: float,
    http_client: httpx2.AsyncClient | None = None,
) -> OpenAIChatModel | None:
    """None without an API key: summaries then answer with the plain digest."""
    if not api_key:
        return None
    return OpenAIChatModel(
        api_key=api_key,
        model=model,
        base_url=base_url,
        timeout_seconds=timeout_seconds,
        http_client=http_client,
    )
