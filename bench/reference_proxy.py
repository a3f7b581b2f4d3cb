"""The least a Python proxy can add: two 30-line proxies for `bench.floor` (not a gateway).

Both forward `POST /v1/chat/completions` to the stub through Relaygate's own HTTP/1.1 client
(`providers/http1.py`) and send the answer back, with nothing else: no auth, limits, routing or
records. `--kind uvicorn` is an ASGI app on uvicorn (uvloop, httptools) with the gateway
workers' protocol, the server the gateway runs on; `--kind raw` answers from an asyncio protocol
on httptools, without ASGI; `--kind asgi-lite` runs the same ASGI app as `uvicorn` from a
minimal ASGI server on that protocol (a scope dict, one receive, two sends), to tell ASGI's own
cost from uvicorn's. Keep-alive only; no streaming, chunked bodies or error handling.

    python -m bench.reference_proxy --kind uvicorn|raw|asgi-lite --port P --upstream URL
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, cast

import httptools
import uvicorn
import uvloop

from relaygate.providers.http1 import Pool
from relaygate.server.protocol import GracefulHttpToolsProtocol

PATH = "/v1/chat/completions"
HEADERS = b"Authorization: Bearer stub\r\nContent-Type: application/json\r\n"


async def forward(pool: Pool, body: bytes) -> tuple[int, bytes]:
    response = await pool.post(PATH, HEADERS, body)
    data = await response.read(1 << 24)
    response.release()
    return response.status, data


class AsgiProxy:
    """The uvicorn reference: read the body, forward, answer."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.pool: Pool | None = None  # made on the server's loop

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self.pool is None:
            self.pool = Pool(self.upstream, limit=256, connect_timeout=5)
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, data = await forward(self.pool, body)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


class _Http(asyncio.Protocol):
    """httptools parsing of keep-alive requests; subclasses answer each complete one."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


class RawProxy(_Http):
    """The lean reference: httptools callbacks straight to the forwarding task."""

    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self.pool = pool

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        asyncio.get_running_loop().create_task(self.answer(body))

    async def answer(self, body: bytes) -> None:
        status, data = await forward(self.pool, body)
        assert self.transport is not None
        head = b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        self.transport.write(head % (status, len(data)) + data)


class LiteAsgiServer(_Http):
    """The same parsing, handing each request to an ASGI app (scope, receive, send)."""

    def __init__(self, app: AsgiProxy) -> None:
        super().__init__()
        self.app = app
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.parser.get_method().decode(),
            "path": self.url.decode(),
            "raw_path": self.url,
            "query_string": b"",
            "headers": self.headers,
        }
        body, self.body, self.url, self.headers = b"".join(self.body), [], b"", []
        asyncio.get_running_loop().create_task(self.run(scope, body))

    async def run(self, scope: dict[str, Any], body: bytes) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        head: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            assert self.transport is not None
            if message["type"] == "http.response.start":
                head.append(b"HTTP/1.1 %d OK\r\n" % message["status"])
                head.extend(b"%s: %s\r\n" % pair for pair in message["headers"])
                head.append(b"\r\n")
            else:
                self.transport.write(b"".join(head) + message["body"])

        await self.app(scope, receive, send)


async def serve_raw(port: int, upstream: str, lite_asgi: bool) -> None:
    loop = asyncio.get_running_loop()
    if lite_asgi:
        app = AsgiProxy(upstream)
        server = await loop.create_server(lambda: LiteAsgiServer(app), "127.0.0.1", port)
    else:
        pool = Pool(upstream, limit=256, connect_timeout=5)
        server = await loop.create_server(lambda: RawProxy(pool), "127.0.0.1", port)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("uvicorn", "raw", "asgi-lite"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args(argv)
    if args.kind != "uvicorn":
        uvloop.run(serve_raw(args.port, args.upstream, lite_asgi=args.kind == "asgi-lite"))
        return 0
    uvicorn.run(
        AsgiProxy(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=GracefulHttpToolsProtocol,  # the gateway workers' protocol (one write per answer)
        access_log=False,
        proxy_headers=False,  # as in `server.supervisor.uvicorn_options`
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
