"""The outer middleware counts the requests in flight and begun; a worker is recycled only when
none ran for a while."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from starlette.types import Receive, Scope, Send

from relaygate.api.middleware import RequestIdMiddleware
from relaygate.app import busy_check


async def test_requests_are_counted_while_they_run_even_when_they_fail() -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(outer.in_flight)
        await gate.wait()
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    outer = RequestIdMiddleware(app)

    async def call(path: str) -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            pass

        await outer({"type": "http", "path": path, "headers": []}, receive, send)  # type: ignore[arg-type]

    calls = [asyncio.create_task(call(p)) for p in ("/a", "/boom", "/b")]
    await asyncio.sleep(0.01)
    assert outer.in_flight == 3 and seen == [1, 2, 3]
    gate.set()
    await asyncio.gather(*calls)
    assert outer.in_flight == 0


async def test_a_request_that_came_and_went_between_two_looks_keeps_the_worker_busy() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    outer = RequestIdMiddleware(app)
    gw = SimpleNamespace(jobs=None, streams=None)
    busy = busy_check(gw, outer)  # type: ignore[arg-type]
    assert not busy()

    async def nothing() -> dict[str, object]:
        return {}

    await outer({"type": "http", "path": "/", "headers": []}, nothing, nothing)  # type: ignore[arg-type]
    assert outer.in_flight == 0 and outer.started == 1
    assert busy()  # finished before this look, but begun since the last one
    assert not busy()  # and nothing since
