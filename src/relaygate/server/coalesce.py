"""One socket write for a response's head and its first body part.

uvicorn writes `http.response.start` (status line and headers) as soon as the app sends it, and
the body in a second write. Over TCP with Nagle off that is two segments, and the client wakes
twice: once for a head it cannot use yet, once for the body. At 100 requests/s the second wake-up
was most of what uvicorn adds over a minimal server (`python -m bench.floor`; decision 0020).

`CoalescingSend` replaces a request cycle's `send`. The head goes through uvicorn's own `send`
(its checks, framing and keep-alive decisions are unchanged) into a holding buffer instead of
the socket. If the first body part follows within the same turn of the event loop, which is the
case for every ready response, both go out in one write. If not (a stream whose first event is
not ready yet), the head is written alone on the next turn of the loop, so a client still sees
the headers at once. ASGI allows a server to hold the head until the first body message; this
holds it for at most one loop iteration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _Held:
    """Stands in for the transport while uvicorn's `send` runs: keeps its writes. A close (the
    last body part of a connection that does not stay open) writes them and closes at once, so
    uvicorn sees the transport closing exactly as it would without the hold."""

    __slots__ = ("parts", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def flush(self) -> None:
        if self.parts and not self.transport.is_closing():
            self.transport.write(b"".join(self.parts))
        self.parts.clear()


class CoalescingSend:
    """A cycle's ASGI `send` that writes the head together with the first body part."""

    __slots__ = ("cycle", "held", "loop")

    def __init__(self, cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop) -> None:
        self.cycle = cycle
        self.loop = loop
        self.held: _Held | None = None  # the head, written but not yet on the socket

    async def __call__(self, message: Any) -> None:
        held = self.held
        if held is None and message["type"] != "http.response.start":
            await RequestResponseCycle.send(self.cycle, message)
            return
        if held is None:
            held = self.held = _Held(self.cycle.transport)
            await self._through(held, message)
            self.loop.call_soon(self._flush, held)
            return
        self.held = None  # from here on the cycle writes to the socket itself
        await self._through(held, message)
        held.flush()

    async def _through(self, held: _Held, message: Any) -> None:
        """uvicorn's `send`, its writes kept in `held`."""
        cycle = self.cycle
        cycle.transport = held  # type: ignore[assignment]
        try:
            await RequestResponseCycle.send(cycle, message)
        finally:
            cycle.transport = held.transport

    def _flush(self, held: _Held) -> None:
        """The loop turned without a body part: the head goes out alone."""
        if self.held is held:
            self.held = None
            held.flush()
