"""JSON request bodies read by the route itself, after authentication: a caller without a key gets
its 401 before a byte of the body is read, and no caller can make the gateway hold more than the
route's limit (413 from the declared length, or as soon as the streamed body passes it)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from gateway.errors import ApiError, describe_problems

Model = TypeVar("Model", bound=BaseModel)


async def read_bounded(request: Request, max_bytes: int, hint: str) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, hint)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes, hint)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int, hint: str) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body is over {max_bytes} bytes", hint)


def parse_body(model: type[Model], raw: bytes) -> Model:
    """`raw` validated as `model`; problems answer 422 in the error envelope with every field the
    body takes listed in the hint (an agent that guessed a name learns the right one)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        fields = ", ".join(model.model_fields)
        raise ApiError(
            422, "invalid_request", describe_problems(errors), f"the body takes only: {fields}"
        ) from exc


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the JSON body of a route that reads it itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
