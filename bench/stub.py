"""A fast OpenAI-compatible upstream stub for benchmarks (a separate process).

It speaks just enough HTTP/1.1 (keep-alive, via httptools on uvloop) to answer
`POST /v1/chat/completions` with a fixed JSON completion, or with Server-Sent Events when the
request has `"stream": true`. It is written to stay far from being the bottleneck: the
"direct" run of the suite measures its ceiling.

    python -m bench.stub --port 9001 [--delay-ms 0] [--stream-chunks 20] [--chunk-interval-ms 0]

`--delay-ms` delays a non-streamed reply and the first streamed chunk (fixed-delay mode);
`--chunk-interval-ms` is the gap between streamed chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop ships with the gateway's runtime deps
    uvloop = None  # type: ignore[assignment]


@dataclass(frozen=True)
class StubSettings:
    """What the stub answers and how fast."""

    delay_s: float = 0.0
    stream_chunks: int = 20
    chunk_interval_s: float = 0.0
    completion_tokens: int = 20


def completion_body(
    model: str, content: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """An OpenAI chat completion answering `content`, with its usage."""
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _completion(model: str, settings: StubSettings) -> bytes:
    tokens = settings.completion_tokens
    body = completion_body(model, "hello " * tokens, 12, tokens)
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(model: str, delta: dict[str, str], finish: str | None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _usage_chunk(model: str, tokens: int) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens},
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class _Request:
    method: bytes
    path: bytes
    body: bytes
    keep_alive: bool


class StubProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order (pipelining-safe)."""

    def __init__(self, settings: StubSettings, cache: dict[str, bytes]) -> None:
        self.settings = settings
        self.cache = cache
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body_parts: list[bytes] = []
        self.pending: deque[_Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body_parts = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        request = _Request(
            method=self.parser.get_method(),
            path=self.url.split(b"?", 1)[0],
            body=b"".join(self.body_parts),
            keep_alive=self.parser.should_keep_alive(),
        )
        if not self.pending and self.worker is None and self._answer_now(request):
            return
        self.pending.append(request)
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._drain())

    # answering
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _finish(self, request: _Request) -> None:
        if not request.keep_alive and self.transport is not None:
            self.transport.close()

    def _respond(self, status: bytes, body: bytes, content_type: bytes) -> bytes:
        return (
            b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
            + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip

    def _answer_now(self, request: _Request) -> bool:
        """Answer synchronously when no waiting is involved; False when it must be awaited."""
        if request.method == b"GET":
            self._write(self._respond(b"200 OK", b'{"status":"ok"}', b"application/json"))
            self._finish(request)
            return True
        if request.path.endswith(b"/chat/completions"):
            try:
                payload = json.loads(request.body or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                self._write(self._respond(b"400 Bad Request", b"{}", b"application/json"))
                self._finish(request)
                return True
            if payload.get("stream") or self.settings.delay_s > 0:
                return False
            self._write(self._completion_response(str(payload.get("model", "fake-gpt"))))
            self._finish(request)
            return True
        self._write(self._respond(b"404 Not Found", b"{}", b"application/json"))
        self._finish(request)
        return True

    def _completion_response(self, model: str) -> bytes:
        cached = self.cache.get(model)
        if cached is None:
            cached = self._respond(
                b"200 OK", _completion(model, self.settings), b"application/json"
            )
            self.cache[model] = cached
        return cached

    async def _drain(self) -> None:
        try:
            while self.pending and not self.closed:
                request = self.pending.popleft()
                await self._answer(request)
                self._finish(request)
        finally:
            self.worker = None

    async def _answer(self, request: _Request) -> None:
        if self._answer_now_if_simple(request):
            return
        payload = json.loads(request.body)
        model = str(payload.get("model", "fake-gpt"))
        if self.settings.delay_s > 0:
            await asyncio.sleep(self.settings.delay_s)
        if not payload.get("stream"):
            self._write(self._completion_response(model))
            return
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        self._write(_http_chunk(_chunk(model, {"role": "assistant", "content": ""}, None)))
        content = _chunk(model, {"content": "hello "}, None)
        for index in range(self.settings.stream_chunks):
            if index and self.settings.chunk_interval_s > 0:
                await asyncio.sleep(self.settings.chunk_interval_s)
            self._write(_http_chunk(content))
        tail = _chunk(model, {}, "stop")
        if include_usage:
            tail += _usage_chunk(model, self.settings.stream_chunks)
        tail += b"data: [DONE]\n\n"
        self._write(_http_chunk(tail) + b"0\r\n\r\n")

    def _answer_now_if_simple(self, request: _Request) -> bool:
        if request.method == b"GET" or not request.path.endswith(b"/chat/completions"):
            return self._answer_now(request)
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return self._answer_now(request)
        if not isinstance(payload, dict):
            return self._answer_now(request)
        return False


async def serve(host: str, port: int, settings: StubSettings) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    cache: dict[str, bytes] = {}
    server = await loop.create_server(
        lambda: StubProtocol(settings, cache), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"stub listening on http://{host}:{port}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed reply/TTFT delay")
    parser.add_argument("--stream-chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--chunk-interval-ms", type=float, default=0.0, help="gap between chunks")
    args = parser.parse_args(argv)
    settings = StubSettings(
        delay_s=args.delay_ms / 1000,
        stream_chunks=args.stream_chunks,
        chunk_interval_s=args.chunk_interval_ms / 1000,
        completion_tokens=args.stream_chunks,
    )
    if uvloop is not None:
        uvloop.run(serve(args.host, args.port, settings))
    else:
        asyncio.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
