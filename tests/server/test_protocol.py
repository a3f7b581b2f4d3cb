"""The worker's HTTP protocol (uvicorn's, with `server.protocol`'s changes).

It is driven here exactly as the event loop drives it, with a transport that records every
write. One write per ready response is the point of `server.coalesce` (a client that gets the
head alone wakes twice), and everything uvicorn decides (framing, keep-alive, closing, errors)
must come out as before. The `relaygate.disconnect` extension tells the app of a lost
connection without a task reading `receive`, and `relaygate.body` whether the request body has
arrived whole.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
import pytest
import uvicorn
from starlette.requests import Request
from uvicorn.server import ServerState

from relaygate.api.disconnect import ClientDisconnected, unless_disconnected
from relaygate.server import extensions
from relaygate.server.protocol import MAX_HEAD_BYTES, GracefulHttpToolsProtocol

REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """What the protocol wrote, write by write, and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _serve(app: Any, data: bytes) -> tuple[RecordingTransport, GracefulHttpToolsProtocol]:
    config = uvicorn.Config(app, http=GracefulHttpToolsProtocol, log_level="critical")
    protocol = GracefulHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(data)
    return transport, protocol


async def _settle(tasks: set[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)  # a pending flush runs on the next turn of the loop


def _parse(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Every response in `raw` (status, headers, body), parsed by httptools."""
    responses: list[tuple[int, dict[bytes, bytes], bytes]] = []

    class Sink:
        headers: dict[bytes, bytes]
        body: bytes

        def on_message_begin(self) -> None:
            self.headers, self.body = {}, b""

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.lower()] = value

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            responses.append((parser.get_status_code(), self.headers, self.body))

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(raw)
    return responses


def _answer(body: bytes, *, status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_a_ready_response_is_one_write() -> None:
    transport, protocol = await _serve(_answer(b"hello"), REQUEST)
    await _settle(protocol.tasks)
    assert len(transport.writes) == 1
    [(status, headers, body)] = _parse(transport.writes[0])
    assert (status, body) == (200, b"hello")
    assert headers[b"content-length"] == b"5"
    assert not transport.closed  # keep-alive


async def test_keep_alive_requests_each_get_one_write() -> None:
    transport, protocol = await _serve(_answer(b"a"), REQUEST)
    await _settle(protocol.tasks)
    protocol.data_received(REQUEST)
    await _settle(protocol.tasks)
    assert len(transport.writes) == 2
    assert [r[2] for r in _parse(b"".join(transport.writes))] == [b"a", b"a"]


async def test_pipelined_requests_are_answered_in_order() -> None:
    transport, protocol = await _serve(_answer(b"p"), REQUEST * 3)
    for _ in range(3):
        await _settle(protocol.tasks)
    assert [r[0] for r in _parse(b"".join(transport.writes))] == [200, 200, 200]


async def test_connection_close_is_written_then_closed() -> None:
    request = b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    transport, protocol = await _serve(_answer(b"bye"), request)
    await _settle(protocol.tasks)
    assert len(transport.writes) == 1  # RecordingTransport refuses a write after close
    [(_, headers, body)] = _parse(transport.writes[0])
    assert (headers[b"connection"], body) == (b"close", b"bye")
    assert transport.closed


async def test_a_late_first_event_does_not_hold_back_the_headers() -> None:
    first_event = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await first_event.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport, protocol = await _serve(app, REQUEST)
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    first_event.set()
    await _settle(protocol.tasks)
    [(_, _, body)] = _parse(b"".join(transport.writes))
    assert body == b"data: 1\n\n"


async def test_stream_events_after_the_first_are_written_as_they_come() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(3):
            await send({"type": "http.response.body", "body": b"e%d" % index, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport, protocol = await _serve(app, REQUEST)
    await _settle(protocol.tasks)
    assert len(transport.writes) == 4  # head + e0, e1, e2, the terminating chunk
    assert _parse(b"".join(transport.writes))[0][2] == b"e0e1e2"


async def test_an_app_failing_before_the_body_gets_a_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    transport, protocol = await _serve(app, REQUEST)
    await _settle(protocol.tasks)
    [(status, _, body)] = _parse(b"".join(transport.writes))
    assert (status, body) == (500, b"Internal Server Error")


async def test_an_app_failing_after_the_head_closes_without_a_half_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    transport, protocol = await _serve(app, REQUEST)
    await _settle(protocol.tasks)
    assert transport.closed
    assert transport.writes == []  # the held head is dropped, not sent without its body


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_head_requests_keep_uvicorn_framing(method: str) -> None:
    request = f"{method} /x HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    transport, protocol = await _serve(_answer(b"12345"), request)
    await _settle(protocol.tasks)
    assert len(transport.writes) == 1
    head, _, rest = transport.writes[0].partition(b"\r\n\r\n")
    assert b"content-length: 5" in head
    assert rest == (b"" if method == "HEAD" else b"12345")


# --- the relaygate.disconnect extension ------------------------------------------------------


async def _watching(withdraw_first: bool) -> tuple[list[str], GracefulHttpToolsProtocol]:
    heard: list[str] = []
    registered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        withdraw = scope["extensions"][extensions.DISCONNECT]["watch"](lambda: heard.append("lost"))
        if withdraw_first:
            withdraw()
        registered.set()
        await asyncio.sleep(30)

    _, protocol = await _serve(app, REQUEST)
    await registered.wait()
    return heard, protocol


async def test_a_lost_connection_is_reported_once_to_the_watcher() -> None:
    heard, protocol = await _watching(withdraw_first=False)
    protocol.connection_lost(None)
    assert heard == ["lost"]
    for task in protocol.tasks:
        task.cancel()


async def test_a_withdrawn_watcher_hears_nothing() -> None:
    heard, protocol = await _watching(withdraw_first=True)
    protocol.connection_lost(None)
    assert heard == []
    for task in protocol.tasks:
        task.cancel()


async def test_a_watcher_registered_after_the_loss_is_told_at_once() -> None:
    _, protocol = await _serve(_answer(b"x"), REQUEST)
    await _settle(protocol.tasks)
    protocol.connection_lost(None)
    heard: list[str] = []
    protocol.on_disconnect(lambda: heard.append("lost"))
    await asyncio.sleep(0)
    assert heard == ["lost"]


async def test_unless_disconnected_uses_the_extension_not_a_receive_watcher() -> None:
    outcome: list[str] = []
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the request body

        async def no_more_receives() -> Any:
            outcome.append("receive called")
            return await receive()

        async def slow_upstream() -> None:
            started.set()
            await asyncio.sleep(30)

        try:
            await unless_disconnected(scope, no_more_receives, slow_upstream())
        except ClientDisconnected:
            outcome.append("disconnected")

    _, protocol = await _serve(app, REQUEST)
    await started.wait()
    protocol.connection_lost(None)
    await asyncio.wait_for(asyncio.gather(*protocol.tasks), 2)
    assert outcome == ["disconnected"]


async def test_without_the_extension_unless_disconnected_watches_receive() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, str]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def work() -> None:
        await asyncio.sleep(30)

    task = asyncio.create_task(unless_disconnected({"type": "http"}, receive, work()))
    await asyncio.sleep(0.01)
    gone.set()
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(task, 2)


# --- the relaygate.body extension ------------------------------------------------------------

POST_HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"


async def _body_app(seen: list[object]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["extensions"][extensions.BODY]["complete"]())
        seen.append(await Request(scope, receive).body())
        await _answer(b"ok")(scope, receive, send)

    return app


async def test_a_body_that_came_with_the_headers_is_complete() -> None:
    seen: list[object] = []
    _, protocol = await _serve(await _body_app(seen), POST_HEAD + b"0123456789")
    await _settle(protocol.tasks)
    assert seen == [True, b"0123456789"]


async def test_a_body_still_on_its_way_is_not_complete() -> None:
    seen: list[object] = []
    transport, protocol = await _serve(await _body_app(seen), POST_HEAD + b"01234")
    await asyncio.sleep(0.01)
    assert seen == [False]
    protocol.data_received(b"56789")
    await _settle(protocol.tasks)
    assert seen == [False, b"0123456789"]
    assert _parse(b"".join(transport.writes))[0][2] == b"ok"


# --- refusals: the JSON envelope, the bound on a head -------------------------------------------


def _refusal(transport: RecordingTransport) -> tuple[int, dict[str, Any]]:
    [(status, headers, body)] = _parse(b"".join(transport.writes))
    assert headers[b"content-type"] == b"application/json" and transport.closed
    error: dict[str, Any] = json.loads(body)["error"]
    return status, error


async def test_a_head_over_the_bound_in_one_read_is_refused_unparsed() -> None:
    head = b"GET /x HTTP/1.1\r\n" + b"X-Many: aaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 3000 + b"\r\n"
    assert len(head) > MAX_HEAD_BYTES
    transport, protocol = await _serve(_answer(b"never"), head)
    assert not protocol.tasks, "the app never saw it"
    status, error = _refusal(transport)
    assert (status, error["code"]) == (431, "request_headers_too_large")


async def test_a_head_over_the_bound_in_small_reads_is_refused_before_it_ends() -> None:
    transport, protocol = await _serve(_answer(b"never"), b"GET /x HTTP/1.1\r\n")
    line = b"X-Many: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_HEAD_BYTES // len(line) + 1):
        protocol.data_received(line)
    status, error = _refusal(transport)
    assert (status, error["code"]) == (431, "request_headers_too_large")
    protocol.data_received(line + b"\r\n")  # what the client still sends is dropped
    assert not protocol.tasks and len(transport.writes) == 1


async def test_a_head_just_under_the_bound_in_one_read_is_served() -> None:
    head = b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    transport, protocol = await _serve(_answer(b"ok"), head)
    await _settle(protocol.tasks)
    assert _parse(b"".join(transport.writes))[0][2] == b"ok"


async def test_a_pipelined_request_is_answered_before_the_garbage_after_it() -> None:
    transport, protocol = await _serve(_answer(b"ok"), REQUEST + b"GET /x HTTP/1.1\nHost: t\n\n")
    await _settle(protocol.tasks)
    await asyncio.sleep(0)  # the refusal goes out on the turn after the answer
    first, second = _parse(b"".join(transport.writes))
    assert (first[0], first[2]) == (200, b"ok")
    assert second[0] == 400 and json.loads(second[2])["error"]["code"] == "invalid_http_request"
    assert transport.closed
