"""An SSE response that streams without buffering, sends heartbeats, and stops on disconnect.

One task (the pump) reads events from the source and sends them; the response's own task
watches for the client's disconnect and for idle periods. Idle longer than the heartbeat interval
sends an SSE comment so proxies with idle timeouts keep the connection open. On disconnect the pump
is cancelled, which closes the source iterator and with it the upstream connection.

Backpressure is end to end: `send` waits while the client's socket buffer is full, so the pump
stops reading the upstream and the upstream's TCP window closes; memory per stream stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send

from relaygate.api.disconnect import wait_for_disconnect

HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"connection", b"keep-alive"),
)


class SSEResponse:
    """An ASGI response streaming the byte frames produced by `source`."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        heartbeat_interval: float,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
    ) -> None:
        self.source = source
        self.heartbeat_interval = heartbeat_interval
        self.status_code = status_code
        self.headers = [
            *SSE_HEADERS,
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ]
        self._last_send = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = asyncio.Lock()
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
        )
        self._last_send = time.monotonic()
        pump = asyncio.create_task(self._pump(send, lock))
        watcher = asyncio.create_task(wait_for_disconnect(receive))
        try:
            while True:
                done, _ = await asyncio.wait(
                    (pump, watcher), timeout=self._next_wait(), return_when=asyncio.FIRST_COMPLETED
                )
                if pump in done:
                    pump.result()
                    return
                if watcher in done:
                    return
                if time.monotonic() - self._last_send >= self.heartbeat_interval:
                    async with lock:
                        await send(
                            {"type": "http.response.body", "body": HEARTBEAT, "more_body": True}
                        )
                        self._last_send = time.monotonic()
        except OSError:
            return  # the client vanished while we were writing
        finally:
            watcher.cancel()
            if not pump.done():
                pump.cancel()
            await asyncio.gather(pump, watcher, return_exceptions=True)

    def _next_wait(self) -> float:
        return max(0.01, self._last_send + self.heartbeat_interval - time.monotonic())

    async def _pump(self, send: Send, lock: asyncio.Lock) -> None:
        try:
            async for frame in self.source:
                async with lock:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                    self._last_send = time.monotonic()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                await aclose()
