"""uvicorn's httptools protocol with four changes: a response's head and first body part go out
in one write (`server.coalesce`); each request's scope carries the extensions of
`server.extensions` (told of a lost connection without a task; whether the body has arrived;
the process's counters); a request the HTTP parser refuses is answered in the gateway's JSON
error envelope instead of uvicorn's text/plain, and counted (`server.stats`, with the clients
that leave while sending a body); and at graceful shutdown a connection accepted but still
without its first request is given a moment to send it.

When a worker stops (replaced by the supervisor, or the gateway shutting down) uvicorn closes
such a connection at once. A client that connected just before the listener closed has usually
sent its request already, unread in the socket buffer, and it would see the connection closed
with no answer. Waiting up to `FIRST_REQUEST_GRACE_S` for that request, and answering it with
`Connection: close`, makes a replacement invisible to clients that open a connection per
request. Idle keep-alive connections (their requests answered) still close at once: clients
handle that from every server, at each keep-alive timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relaygate.errors import GatewayError
from relaygate.server import extensions
from relaygate.server.coalesce import CoalescingSend
from relaygate.server.stats import ServerStats, server_stats

FIRST_REQUEST_GRACE_S = 2.0
# The request line and headers of one request, at most (httptools has no limit of its own; nginx
# allows 32 KiB by default, Node.js 16 KiB). A longer head is refused with 431.
MAX_HEAD_BYTES = 64 * 1024
# After a refusal, how long what the client still sends is read and dropped before the socket
# closes: closing with unread data makes the kernel send a reset, which can destroy the answer
# before the client reads it.
LINGER_S = 2.0

log = logging.getLogger("relaygate.server")

# The parser's reasons are fixed strings of llhttp (never the client's bytes); one is not
# self-explanatory.
_REASONS = {"Pause on PRI/Upgrade": "HTTP/2 is not supported, use HTTP/1.1"}
HEAD_TOO_LARGE = f"the request line and headers exceed {MAX_HEAD_BYTES} bytes"


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over MAX_HEAD_BYTES."""


def _head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The size of a parsed head, near enough (method and version not counted)."""
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


class GracefulHttpToolsProtocol(HttpToolsProtocol):
    """The protocol of every gateway worker (`server.supervisor.uvicorn_options`)."""

    started_any = False  # a request has begun on this connection
    stopping = False  # shutdown was asked while waiting for the first request
    lost = False  # the client's connection is gone
    _on_lost: list[Callable[[], None]] | None = None
    refused = False  # the parser refused this connection's input: answered 400 and closed
    in_head = False  # between the start of a request and the end of its headers
    head_bytes = 0  # bytes received while in the head (an upper bound of its size)
    measure_head = False  # a head completed by the data being parsed could pass the bound
    head_too_large = False
    _disconnect: dict[object, object] | None = None  # the relaygate.disconnect extension
    _stats: ServerStats | None = None
    _refusal_pending: bytes | None = None  # a 400 waiting for earlier answers to go out

    @property
    def stats(self) -> ServerStats:
        """The counters of this worker process (shared by all its connections)."""
        if self._stats is None:
            self._stats = server_stats(self.app_state)
        return self._stats

    def on_message_begin(self) -> None:
        self.started_any = True
        self.in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        if self.measure_head and _head_size(self.url, self.headers) > MAX_HEAD_BYTES:
            self.head_too_large = True
            raise _HeadTooLarge  # stops the parser; data_received answers 431
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
            extensions.STATS: self.stats.extension,
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

    def data_received(self, data: bytes) -> None:
        """As uvicorn's, but a request the parser refuses gets the JSON envelope (`refuse`),
        and an upgrade the gateway does not speak (it speaks none) is served as plain HTTP
        without uvicorn's warning about a missing WebSocket library."""
        if self.refused:
            return  # the parser cannot resume; the refusal is answered or on its way
        self._unset_keepalive_if_required()
        # Measure a head only when it could be over the bound: never for an ordinary request.
        self.measure_head = self.head_bytes + len(data) > MAX_HEAD_BYTES
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.head_too_large:
                self.refuse(HEAD_TOO_LARGE, status=431)
            else:
                self.refuse(str(exc) or type(exc).__name__)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                log.debug("an Upgrade request was answered as plain HTTP/1.1")
        else:
            if self.in_head:  # `data` was (or ended in) an unfinished head
                self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD_BYTES:
                    self.refuse(HEAD_TOO_LARGE, status=431)

    def refuse(self, reason: str, status: int = 400) -> None:
        """Answer `status` (400, or 431 for a head over MAX_HEAD_BYTES) in the error envelope,
        count it, and close: the parser cannot say where a next request would begin, so the
        connection cannot be kept.

        Requests of this connection parsed before the bad bytes (pipelined) are answered
        first. When the bad bytes are the body of the request in progress, its handler hears
        of a lost connection; if it has begun to answer, the connection is only closed (a
        second answer inside the first would be garbage to the client)."""
        reason = _REASONS.get(reason, reason)
        self.refused = True
        self.stats.invalid_requests[reason] += 1
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("refused an invalid HTTP request from %s: %s", client, reason)
        answer = self._refusal(reason, status)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            self._refusal_pending = answer  # sent once the earlier answers are out
            return
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self._answer_and_close(answer)
        else:
            self.transport.close()

    def _answer_and_close(self, answer: bytes) -> None:
        """Write `answer`, end our side, and close once the client has read it (or LINGER_S
        later); meanwhile `data_received` drops whatever the client still sends."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _refusal(self, reason: str, status: int) -> bytes:
        if status == 431:
            error = GatewayError(
                431, reason, code="request_headers_too_large", type="invalid_request_error"
            )
            head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        else:
            error = GatewayError(
                400, f"invalid HTTP/1.1 request: {reason}", code="invalid_http_request"
            )
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
        body = error.to_bytes()
        defaults = self.server_state.default_headers  # date, server
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_pending is not None:
            # On the next turn: the answer just completed may still be held (server.coalesce).
            self.loop.call_soon(self._send_pending_refusal)

    def _send_pending_refusal(self) -> None:
        cycle = self.cycle  # the last request parsed: once answered, all before it are
        if self._refusal_pending is None or (cycle is not None and not cycle.response_complete):
            return
        answer, self._refusal_pending = self._refusal_pending, None
        self._answer_and_close(answer)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's own 400 (text/plain), should any path of it still call this."""
        self.refuse(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.more_body
            and not cycle.response_complete
            and not self.refused
            and not self.lost
        ):
            self.stats.body_disconnects += 1  # the client left while sending its body
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
