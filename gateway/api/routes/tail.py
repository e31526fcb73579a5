"""GET /api/monitoring/logs/tail: a bounded live follow of a log query as Server-Sent Events
(`entries` events with the cursor after them, then one `end` event with the cursor to resume, or
an `error` event carrying the error envelope). See gateway.services.tail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from gateway.api.deps import LokiDep, Principal, SettingsDep, TailSlotsDep
from gateway.api.params import CursorText, LogReader, QueryText, TimeText, reject_unknown_params
from gateway.config import GatewaySettings
from gateway.errors import ApiError, Failure, envelope
from gateway.services.logql import ScannedQuery
from gateway.services.loki import LokiClient, max_entries_per_query
from gateway.services.pagination import Cursor
from gateway.services.tail import TailBatch, TailSlots, follow, tail_start

router = APIRouter(
    prefix="/api/monitoring/logs", tags=["logql"], dependencies=[Depends(reject_unknown_params)]
)
DEFAULT_TAIL_SECONDS = 30.0
DEFAULT_TAIL_LINES = 500


def bounded(value: float | None, default: float, maximum: float, name: str) -> float:
    if value is None:
        return min(default, maximum)
    chosen = value
    if chosen > maximum:
        raise ApiError(
            400,
            f"{name}_too_large",
            f"{name} {chosen:g} exceeds the maximum of {maximum:g}",
            f"use {name} <= {maximum:g} and resume with the cursor of the end event",
        )
    return min(chosen, maximum)


def _event(name: str, body: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


async def tail_events(
    loki: LokiClient,
    settings: GatewaySettings,
    principal: Principal,
    slots: TailSlots,
    scanned: ScannedQuery,
    digest: str,
    start: Cursor,
    max_seconds: float,
    max_lines: int,
) -> AsyncIterator[bytes]:
    try:
        async for item in follow(
            loki,
            scanned,
            tenant=principal.tenant,
            digest=digest,
            start=start,
            max_seconds=max_seconds,
            max_lines=max_lines,
            poll_seconds=settings.tail_poll_seconds,
            max_entries=max_entries_per_query(settings),
            redact_lines=settings.redact_log_lines,
        ):
            if isinstance(item, TailBatch):
                start = Cursor.decode(item.next_cursor, digest)
                yield _event("entries", {"streams": item.streams, "next_cursor": item.next_cursor})
            else:
                yield _event(
                    "end", {"next_cursor": item.next_cursor, "reason": item.reason, "lines": item.lines}
                )
    except Failure as exc:
        yield _event("error", {**envelope(exc.code, exc.message, exc.hint), "next_cursor": start.encode()})
    finally:
        slots.release(principal.key_id)


@router.get("/tail", summary="Live follow of a log query (Server-Sent Events), bounded in time and lines")
async def tail(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    slots: TailSlotsDep,
    query: QueryText,
    since: TimeText = None,
    cursor: CursorText = None,
    max_seconds: Annotated[float | None, Query(gt=0, description="seconds to follow (default 30)")] = None,
    max_lines: Annotated[int | None, Query(ge=1, description="lines to return at most (default 500)")] = None,
) -> StreamingResponse:
    seconds = bounded(max_seconds, DEFAULT_TAIL_SECONDS, settings.tail_max_seconds, "max_seconds")
    lines = int(bounded(max_lines, DEFAULT_TAIL_LINES, settings.tail_max_lines, "max_lines"))
    scanned, digest, start = tail_start(principal, settings, query, since, cursor)
    slots.acquire(principal.key_id)
    events = tail_events(loki, settings, principal, slots, scanned, digest, start, seconds, lines)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
