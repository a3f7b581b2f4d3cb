"""The SSE response: frames in order, heartbeats while idle, a quiet end when the client leaves
(told by the server's extension or by `receive`), and the first ready frame written with the
headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from relaygate.api.sse import HEARTBEAT, SSEResponse
from relaygate.server import extensions
from tests.server.test_protocol import REQUEST, _parse, _serve, _settle


class Source:
    """Frames with optional pauses before them; records whether it was closed."""

    def __init__(self, *frames: bytes | float) -> None:
        self.frames = frames
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:  # an async generator
        try:
            for item in self.frames:
                if isinstance(item, float):
                    await asyncio.sleep(item)
                else:
                    yield item
        finally:
            self.closed = True


class Client:
    """An ASGI client: what was sent, and a `receive` that reports a disconnect on demand."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


def _response(source: Source, interval: float = 10.0) -> SSEResponse:
    return SSEResponse(source.__aiter__(), heartbeat_interval=interval, headers={"X-Route": "r"})


async def test_frames_in_order_then_the_end() -> None:
    client = Client()
    await _response(Source(b"a", b"b", 0.01, b"c"))({}, client.receive, client.send)
    start = client.messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"x-route", b"r") in start["headers"]
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert client.bodies == [b"a", b"b", b"c", b""]
    assert client.messages[-1]["more_body"] is False


async def test_heartbeats_only_while_the_source_is_silent() -> None:
    client = Client()
    await _response(Source(b"a", 0.35, b"b"), interval=0.1)({}, client.receive, client.send)
    bodies = client.bodies
    assert bodies[0] == b"a" and bodies[-2:] == [b"b", b""]
    assert 2 <= bodies.count(HEARTBEAT) <= 4  # about one per 0.1 s of the 0.35 s pause
    assert set(bodies[1:-2]) == {HEARTBEAT}


async def test_a_disconnect_seen_through_receive_ends_the_stream_and_closes_the_source() -> None:
    client, source = Client(), Source(b"a", 30.0, b"never")
    response = asyncio.create_task(_response(source)({}, client.receive, client.send))
    await asyncio.sleep(0.05)
    client.leave.set()
    await asyncio.wait_for(response, 2)  # ends quietly, no exception
    assert source.closed
    assert client.bodies == [b"a"]  # no end-of-body for a client that is gone


async def test_a_disconnect_told_by_the_server_extension_needs_no_receive() -> None:
    watchers: list[Callable[[], None]] = []
    withdrawn: list[bool] = []

    def watch(callback: Callable[[], None]) -> Callable[[], None]:
        watchers.append(callback)
        return lambda: withdrawn.append(True)

    async def no_receive() -> dict[str, Any]:
        raise AssertionError("the extension replaces reading receive")

    client, source = Client(), Source(b"a", 30.0, b"never")
    scope = {"extensions": {extensions.DISCONNECT: {"watch": watch}}}
    response = asyncio.create_task(_response(source)(scope, no_receive, client.send))
    await asyncio.sleep(0.05)
    [leave] = watchers
    leave()
    await asyncio.wait_for(response, 2)
    assert source.closed and withdrawn == [True]


async def test_a_finished_stream_stops_watching() -> None:
    withdrawn: list[bool] = []
    scope = {
        "extensions": {extensions.DISCONNECT: {"watch": lambda cb: lambda: withdrawn.append(True)}}
    }
    client = Client()
    await _response(Source(b"a"))(scope, client.receive, client.send)
    assert withdrawn == [True]


async def test_a_cancellation_from_outside_is_not_absorbed() -> None:
    client, source = Client(), Source(b"a", 30.0)
    response = asyncio.create_task(_response(source)({}, client.receive, client.send))
    await asyncio.sleep(0.05)
    response.cancel()
    with pytest.raises(asyncio.CancelledError):
        await response
    assert source.closed


async def test_a_failing_source_fails_the_response() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a"
        raise RuntimeError("upstream parser bug")

    client = Client()
    with pytest.raises(RuntimeError, match="parser bug"):
        await SSEResponse(broken(), heartbeat_interval=10)({}, client.receive, client.send)


async def test_the_first_ready_frame_goes_out_with_the_headers() -> None:
    source = Source(b"data: 1\n\n", 0.01, b"data: 2\n\n")
    transport, protocol = await _serve(_response(source), REQUEST)
    await _settle(protocol.tasks)
    first = transport.writes[0]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"data: 1\n\n\r\n")
    [(status, _, body)] = _parse(b"".join(transport.writes))
    assert (status, body) == (200, b"data: 1\n\ndata: 2\n\n")


async def test_a_client_slow_to_take_a_frame_does_not_spin_the_heartbeat_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaygate.api import sse

    looks = 0
    tick = sse._Stream._tick

    def counted(self: Any) -> None:
        nonlocal looks
        looks += 1
        tick(self)

    monkeypatch.setattr(sse._Stream, "_tick", counted)
    release = asyncio.Event()
    client = Client()

    async def slow_send(message: dict[str, Any]) -> None:
        if message.get("body") == b"a":  # the client's buffer is full for 0.4 s
            await release.wait()
        client.messages.append(message)

    response = asyncio.create_task(
        _response(Source(b"a"), interval=0.05)({}, client.receive, slow_send)
    )
    await asyncio.sleep(0.4)
    release.set()
    await asyncio.wait_for(response, 2)
    assert looks <= 12  # about one look per 0.05 s interval, not one every few milliseconds
    assert client.bodies.count(HEARTBEAT) <= 1  # one heartbeat waited behind the frame
