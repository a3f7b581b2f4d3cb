"""A lean HTTP/1.1 client: keep-alive connections to one origin, parsed by httptools.

The upstream call is the largest single cost of a proxied request (decision 0017): aiohttp's
general client spent about 800 µs of CPU per request at 100 req/s, this one about a fifth of that.
It does only what a provider call needs: POST with a JSON body to one scheme/host/port, TLS with
the system's trust store, `Content-Length` or chunked responses, gzip/deflate bodies, a connection
limit, and reuse of idle connections (closed after `IDLE_S` unused). It never follows redirects,
never reads proxy settings from the environment and never sends a header containing CR, LF or
NUL.

A connection that was idle in the pool may have been closed by the server just as it is reused;
if it ends before a single byte of the answer arrives, the request is sent once more on a new
connection (what browsers and most clients do; the server closed it without reading it).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import zlib
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 256 * 1024  # buffered body bytes before the socket stops being read
_MAX_HEADER_BYTES = 64 * 1024
IDLE_S = 15.0  # an idle pooled connection is closed after this long


class HTTPClientError(Exception):
    """The connection failed or the server broke the protocol (no detail that could leak)."""


class ConnectFailed(HTTPClientError):
    """No connection could be made (refused, unresolvable, TLS failure, connect timeout)."""


def _check(text: str) -> bytes:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("an HTTP header must not contain CR, LF or NUL")
    return text.encode("latin-1")


def encode_headers(headers: dict[str, str]) -> bytes:
    """`Name: value\\r\\n` lines, refusing anything that could split the request."""
    return b"".join(_check(k) + b": " + _check(v) + b"\r\n" for k, v in headers.items())


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response currently arriving on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # One parser for the connection's whole life (llhttp parses keep-alive answers one
        # after another). None once the connection is gone: the parser and the transport both
        # point back at this object, and dropping them lets it be freed at once rather than by
        # the cycle collector.
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        """Forget the previous answer (its headers list stays with the Response holding it)."""
        self._status = 0
        self._header_bytes = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks.clear()
        self._buffered = 0
        self.complete = False
        self.received_any = False
        self._keep_alive = False
        self.error: HTTPClientError | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # nothing asked for: the server is talking out of turn
            self._fail(HTTPClientError("unexpected data on an idle connection"))
            return
        self.received_any = True
        if self._parser is None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPClientError("the server switched protocols"))
        except httptools.HttpParserError:
            self._fail(HTTPClientError("the server sent a malformed response"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and exc is None and self._until_close():
            self.complete = True  # a body without a length ends when the server closes
            self._wake()
        elif not self.complete:
            self._fail(HTTPClientError("the server closed the connection"))
        self._parser = None
        self.transport = None

    def _until_close(self) -> bool:
        """Headers are in and name neither a length nor chunked framing (HTTP/1.0 style)."""
        if self._head is None or not self._head.done() or self._head.exception() is not None:
            return False
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = int(self._parser.get_status_code())
        self._keep_alive = bool(self._parser.should_keep_alive())
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # used by Response and Pool
    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Get ready for the next response; the future resolves once its headers are in."""
        self._reset()
        self._head = loop.create_future()
        return self._head

    def status(self) -> int:
        return self._status

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    def reusable(self) -> bool:
        return self.complete and not self.closed and self._keep_alive

    async def next_chunk(self) -> bytes:
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        # Everything that has arrived, as one piece: a burst of small chunks costs one pass.
        chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def ready(self) -> bool:
        """`next_chunk` would return without waiting."""
        return bool(self._chunks) or self.complete or self.error is not None

    def done_with(self) -> None:
        """The response is finished with: no data is expected until the next `start`."""
        self._head = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: HTTPClientError) -> None:
        if self.error is None:
            self.error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved here; the caller re-raises it
        self._wake()
        self.close()


def _joined(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers by lower-cased name, repeated ones joined with ", "."""
    found: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


class Response:
    """The status and headers of an answer; its body is read chunk by chunk."""

    def __init__(self, pool: Pool, connection: _Connection) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = connection.status()
        self._raw_headers = connection.raw_headers()
        encoding = b"identity"
        for name, value in self._raw_headers:
            if name.lower() == b"content-encoding":
                encoding = value.strip().lower()
        self._inflate = None
        if encoding in (b"gzip", b"x-gzip", b"deflate"):
            self._inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
        elif encoding not in (b"", b"identity"):
            connection.close()
            raise HTTPClientError("the server used an unsupported content encoding")

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """By lower-cased name; decoded on first use (only error answers need them)."""
        return _joined(self._raw_headers)

    async def read_chunk(self) -> bytes:
        """The next piece of the body as it arrives; b"" at its end."""
        connection = self._connection
        if connection is None:
            return b""
        while True:
            chunk = await connection.next_chunk()
            if self._inflate is None:
                return chunk
            if not chunk:
                return self._inflate.flush()
            try:
                out = self._inflate.decompress(chunk)
            except zlib.error:
                raise HTTPClientError("the server sent a corrupt compressed body") from None
            if out:
                return out

    def ready(self) -> bool:
        """`read_chunk` would return without waiting: the next piece (or the end) has arrived.
        Never for a compressed body, whose next piece may decompress to nothing."""
        connection = self._connection
        return connection is None or (self._inflate is None and connection.ready())

    async def read(self, limit: int) -> bytes:
        """Up to about `limit` bytes of the body."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)[:limit]

    def release(self) -> None:
        """Hand the connection back: kept for reuse if the body was read to its end, else
        closed (an unread body would be mistaken for the next answer)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.put_back(connection)


class Pool:
    """Keep-alive connections to the origin of `base_url`, at most `limit` at once."""

    def __init__(self, base_url: str, *, limit: int, connect_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a provider's base URL must be http:// or https:// with a host")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = (host if default_port else f"{host}:{self._port}").encode("idna")
        self.prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self._tls else None
        self._limit = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []  # most recently used last
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def post(self, target: str, headers: bytes, body: bytes) -> Response:
        """Send `POST target` (path and query, already encoded) and wait for the headers.

        `headers` are encoded lines (see `encode_headers`); Host and Content-Length are added.
        """
        head = (
            b"POST " + _check(target) + b" HTTP/1.1\r\nHost: " + self._host_header + b"\r\n"
            + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        await self._limit.acquire()
        try:
            for _ in range(2):
                connection, reused = await self._connection()
                arrived = connection.start(asyncio.get_running_loop())
                if connection.transport is None or connection.closed:
                    raise HTTPClientError("the connection closed before the request was sent")
                connection.transport.write(head + body)
                try:
                    await arrived
                except HTTPClientError:
                    connection.done_with()
                    if reused and not connection.received_any:
                        continue  # the server had closed it while it sat in the pool
                    raise
                except BaseException:
                    connection.done_with()
                    connection.close()
                    raise
                return Response(self, connection)
            raise HTTPClientError("the server closed the connection")
        except BaseException:
            self._limit.release()
            raise

    def put_back(self, connection: _Connection) -> None:
        connection.done_with()
        if connection.reusable() and not self._closed:
            loop = asyncio.get_running_loop()
            connection.idle_since = loop.time()
            self._idle.append(connection)
            if self._sweep is None:
                self._sweep = loop.call_later(IDLE_S, self._close_stale)
        else:
            connection.close()
        self._limit.release()

    def _close_stale(self) -> None:
        """Close connections idle for IDLE_S (the oldest are first in the list)."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - IDLE_S
        stale = 0
        while stale < len(self._idle) and self._idle[stale].idle_since <= cutoff:
            self._idle[stale].close()
            stale += 1
        del self._idle[:stale]
        if self._idle:
            self._sweep = loop.call_at(self._idle[0].idle_since + IDLE_S, self._close_stale)

    @property
    def idle(self) -> int:
        """Connections open and waiting for a request."""
        return len(self._idle)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._tls else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectFailed(type(exc).__name__) from None
        return connection, False
