"""uvicorn's httptools protocol with three changes: a response's head and first body part go out
in one write (`server.coalesce`); each request's scope carries the extensions of
`server.extensions` (told of a lost connection without a task; whether the body has arrived);
and at graceful shutdown a connection accepted but still without its first request is given a
moment to send it.

When a worker stops (replaced by the supervisor, or the gateway shutting down) uvicorn closes
such a connection at once. A client that connected just before the listener closed has usually
sent its request already, unread in the socket buffer, and it would see the connection closed
with no answer. Waiting up to `FIRST_REQUEST_GRACE_S` for that request, and answering it with
`Connection: close`, makes a replacement invisible to clients that open a connection per
request. Idle keep-alive connections (their requests answered) still close at once: clients
handle that from every server, at each keep-alive timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relaygate.server import extensions
from relaygate.server.coalesce import CoalescingSend

FIRST_REQUEST_GRACE_S = 2.0


class GracefulHttpToolsProtocol(HttpToolsProtocol):
    """The protocol of every gateway worker (`server.supervisor.uvicorn_options`)."""

    started_any = False  # a request has begun on this connection
    stopping = False  # shutdown was asked while waiting for the first request
    lost = False  # the client's connection is gone
    _on_lost: list[Callable[[], None]] | None = None
    _disconnect: dict[object, object] | None = None  # the relaygate.disconnect extension

    def on_message_begin(self) -> None:
        self.started_any = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle is previous:
            return  # an upgrade request: uvicorn made no cycle
        # The cycle's task has not run yet; it looks `send` up on the instance when it does.
        cycle.send = CoalescingSend(cycle, self.loop)  # type: ignore[method-assign]
        if self._disconnect is None:  # one per connection, shared by its requests
            self._disconnect = {"watch": self.on_disconnect}
        cycle.scope["extensions"] = {
            extensions.DISCONNECT: self._disconnect,
            extensions.BODY: {"complete": lambda: not cycle.more_body},  # this request's body
        }
        if self.stopping:
            cycle.keep_alive = False  # answer it, then close

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once when the client's connection is lost (soon, if it already is);
        returns the function that withdraws it."""
        if self.lost:
            handle = self.loop.call_soon(callback)
            return handle.cancel
        if self._on_lost is None:
            self._on_lost = []
        callbacks = self._on_lost
        callbacks.append(callback)

        def withdraw() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return withdraw

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        super().connection_lost(exc)
        callbacks, self._on_lost = self._on_lost, None
        for callback in callbacks or ():
            callback()

    def shutdown(self) -> None:
        if self.started_any or self.cycle is not None:
            super().shutdown()
            return
        self.stopping = True
        self.loop.call_later(FIRST_REQUEST_GRACE_S, super().shutdown)
