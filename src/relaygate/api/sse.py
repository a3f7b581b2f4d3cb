"""An SSE response that streams without buffering, sends heartbeats, and stops on disconnect.

The response's own task reads frames from the source and sends them, so a frame that is ready
when the response starts goes out in the same turn of the loop as the headers (one write with
the workers' protocol, decision 0020). Two things run beside it without a task of their own:

- Disconnect: told by the server's `relaygate.disconnect` extension (a callback), or else by a
  task reading `receive`. Either cancels the response's task, which closes the source iterator
  and with it the upstream connection, and the response ends quietly.
- Heartbeats: one timer per interval checks when a frame last went out; after a heartbeat
  interval without one it sends an SSE comment, so proxies with idle timeouts keep the
  connection open. A lock keeps a heartbeat from interleaving with a frame.

Backpressure is end to end: `send` waits while the client's socket buffer is full, so the source
is not read and the upstream's TCP window closes; memory per stream stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send

from relaygate.api.disconnect import CancelOnDisconnect, ClientDisconnected

HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"connection", b"keep-alive"),
)
MIN_WAIT_S = 0.01  # the heartbeat timer never re-arms sooner than this


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = _Stream(send, self.heartbeat_interval)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
        )
        stream.sent()
        stream.start_heartbeats()
        try:
            with CancelOnDisconnect(scope, receive):
                try:
                    async for frame in self.source:
                        await stream.send(frame, more_body=True)
                    await stream.send(b"", more_body=False)
                finally:
                    stream.stop_heartbeats()
        except (ClientDisconnected, OSError):
            pass  # the client left, or vanished while we were writing: the response ends
        finally:
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                await aclose()


class _Stream:
    """Sends body frames and, when idle for a heartbeat interval, heartbeats."""

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._lock = asyncio.Lock()
        self._last_send = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.Task[None] | None = None

    def sent(self) -> None:
        self._last_send = time.monotonic()

    async def send(self, body: bytes, *, more_body: bool) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": body, "more_body": more_body})
            self._last_send = time.monotonic()

    def start_heartbeats(self) -> None:
        self._arm(self._interval)

    def stop_heartbeats(self) -> None:
        """No more heartbeats; one waiting for the lock is dropped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._beat is not None:
            self._beat.cancel()

    def _arm(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(max(MIN_WAIT_S, delay), self._tick)

    def _tick(self) -> None:
        idle = time.monotonic() - self._last_send
        if idle < self._interval:
            self._arm(self._interval - idle)
            return
        # Idle for an interval: one heartbeat, unless one is still waiting for a send that the
        # client is slow to take; either way the next look is an interval away.
        if self._beat is None or self._beat.done():
            self._beat = asyncio.ensure_future(self._heartbeat())
        self._arm(self._interval)

    async def _heartbeat(self) -> None:
        with contextlib.suppress(OSError):  # the client is gone: the disconnect watch says so
            await self.send(HEARTBEAT, more_body=True)
