"""The outer middleware counts the requests in flight (a worker is recycled only at zero)."""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope, Send

from relaygate.api.middleware import RequestIdMiddleware


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
