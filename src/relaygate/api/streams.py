"""Resumable streams: a streaming chat request with `x-relaygate-resumable: true` keeps
generating when the client leaves; `GET /v1/streams/{id}` replays it from the start or resumes
after `Last-Event-ID`; `DELETE` stops the generation."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.authn import authenticate
from relaygate.api.checks import plausible_id
from relaygate.api.sse import SSEResponse
from relaygate.errors import GatewayError, bad_request
from relaygate.state import Gateway, gateway
from relaygate.streams.store import StreamStore

RESUMABLE_HEADER = "x-relaygate-resumable"
STREAM_ID_HEADER = "x-relaygate-stream-id"


def wants_resumable(request: Request) -> bool:
    """Whether the client asked for a resumable stream (`true`/`1`; anything else but
    `false`/`0` is a 400)."""
    value = request.headers.get(RESUMABLE_HEADER)
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise bad_request(f"{RESUMABLE_HEADER} must be true or false", param=RESUMABLE_HEADER)


def _store(gw: Gateway) -> StreamStore:
    if gw.streams is None:
        raise GatewayError(503, "resumable streams are not available")
    return gw.streams


async def follow(
    store: StreamStore, stream_id: str, after: int, wait_s: float
) -> AsyncIterator[bytes]:
    """The stream's events after `after`, each with its `id:` line, until it ends."""
    while True:
        frames, ended = await store.read(stream_id, after, wait_s)
        for number, frame in frames:
            yield b"id: %d\n" % number + frame
            after = number
        if ended and not frames:
            return


async def start(
    gw: Gateway,
    tenant_id: str,
    produce: Callable[[Callable[[bytes], Awaitable[bool]], asyncio.Event], Awaitable[None]],
) -> tuple[str, asyncio.Event]:
    """Open a stream and run `produce(append, opened)` detached from the client."""
    store = _store(gw)
    stream_id = "rs_" + secrets.token_urlsafe(18)
    await store.open(stream_id, tenant_id, gw.config.streams.ttl_s)
    opened = asyncio.Event()

    async def append(frame: bytes) -> bool:
        return await store.append(stream_id, frame)

    async def run() -> None:
        try:
            await produce(append, opened)
        finally:
            opened.set()
            await store.close(stream_id)

    gw.background.spawn(run(), name=f"resumable-{stream_id}")
    return stream_id, opened


def response(
    gw: Gateway, stream_id: str, headers: dict[str, str], failure: GatewayError | None
) -> SSEResponse:
    """The original client's response: the same events a resuming client would get."""
    if failure is not None:
        failure.headers.update({**headers, STREAM_ID_HEADER: stream_id})
        raise failure
    wait = gw.config.server.heartbeat_interval_s
    return SSEResponse(
        follow(_store(gw), stream_id, 0, wait),
        heartbeat_interval=wait,
        headers={**headers, STREAM_ID_HEADER: stream_id},
    )


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request("Last-Event-ID must be an event id (a number)", param="Last-Event-ID")
    return int(raw)


async def _owned(request: Request) -> tuple[Gateway, StreamStore, str]:
    gw = gateway(request)
    principal = await authenticate(request, gw)
    store = _store(gw)
    stream_id = request.path_params["stream_id"]
    if not plausible_id(stream_id) or await store.owner(stream_id) != principal.tenant_id:
        raise GatewayError(
            404,
            f"no stream with id '{stream_id[:64]}' (it may have expired)",
            code="stream_not_found",
        )
    return gw, store, stream_id


async def resume(request: Request) -> SSEResponse:
    """GET /v1/streams/{id}: replay from the start, or resume after `Last-Event-ID`."""
    after = _last_event_id(request)
    gw, store, stream_id = await _owned(request)
    wait = gw.config.server.heartbeat_interval_s
    return SSEResponse(
        follow(store, stream_id, after, wait),
        heartbeat_interval=wait,
        headers={STREAM_ID_HEADER: stream_id},
    )


async def stop(request: Request) -> Response:
    """DELETE /v1/streams/{id}: stop the generation (its events so far stay readable)."""
    _gw, store, stream_id = await _owned(request)
    await store.cancel(stream_id)
    return Response(status_code=204)
