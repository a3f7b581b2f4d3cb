"""A fake OpenAI upstream that speaks the documented chat/embeddings wire format.

Behaviour is chosen by the request's `model`:
- `gpt-echo`: echoes the last user message; streams it word by word with usage when asked.
- `gpt-no-usage`: streams without a usage chunk even when asked (as some servers do).
- `gpt-slow`: waits `delay` seconds (from `metadata.delay`, default 30) before answering,
  watching its connection; streams one chunk every 20 ms for up to 30 s.
- `gpt-huge`: streams `metadata.bytes` bytes (default 10 MB) of content as fast as it can.
- `gpt-fail-mid`: streams two chunks then an OpenAI error event.
- `gpt-cut`: streams two chunks then drops the connection without [DONE].
- `gpt-bad-chunk`: streams two chunks then a `data:` line that is not JSON.
- `gpt-odd-chunk`: streams two chunks then a JSON chunk of the wrong shape (`choices` of strings).
- `gpt-500`, `gpt-429`, `gpt-401`, `gpt-400`, `gpt-redirect`: answer with that error.
- `gpt-echo-error`: answers `metadata.status` (default 500) with an OpenAI error whose message
  quotes what it was sent (the Authorization header and the last user message), as providers'
  error messages sometimes do.
Every request is recorded with its headers; closed connections are recorded with a timestamp.
`closed_at` and `bytes_sent` are keyed by the request's tag: the `X-Test-Tag` header, else
`metadata.tag` in the body (which a gateway passes through), else the request's index.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

API_KEY = "sk-fake-upstream-key-0123456789abcdef"


@dataclass
class Recorder:
    """What the fake saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    closed_at: dict[str, float] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _tag(request: web.Request, body: dict[str, Any], index: int) -> str:
    """The `X-Test-Tag` header, else `metadata.tag` (gateways pass the body through), else index."""
    metadata = body.get("metadata")
    from_body = metadata.get("tag") if isinstance(metadata, dict) else None
    return request.headers.get("X-Test-Tag") or (str(from_body) if from_body else str(index))


class FakeOpenAI:
    """The aiohttp application and its recorder."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/embeddings", self.embeddings)
        self.app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        self.app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)

    def _authorized(self, request: web.Request) -> bool:
        return (
            request.headers.get("Authorization") == f"Bearer {API_KEY}"
            or request.headers.get("api-key") == API_KEY
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        tag = _tag(request, body, len(self.recorder.requests))
        self.recorder.requests.append(body)
        self.recorder.headers.append(dict(request.headers))
        self.recorder.paths.append(request.path_qs)
        if not self._authorized(request):
            return _error(
                401,
                "Incorrect API key provided: sk-fak***cdef",
                "invalid_request_error",
                "invalid_api_key",
            )
        model = body.get("model") or request.match_info.get("deployment", "")
        errors = {
            "gpt-500": (500, "server_error"),
            "gpt-429": (429, "rate_limit_exceeded"),
            "gpt-401": (401, "invalid_api_key"),
            "gpt-400": (400, "invalid_value"),
            "gpt-422": (422, "unprocessable"),
        }
        if model in errors:
            status, code = errors[model]
            response = _error(status, f"simulated {status}", "invalid_request_error", code)
            if status == 429:
                response.headers["Retry-After"] = "7"
            return response
        if model == "gpt-echo-error":
            status = int((body.get("metadata") or {}).get("status", 500))
            quoted = f"{request.headers.get('Authorization', '')} {_last_user_text(body)}"
            return _error(
                status,
                f"Could not process the request {quoted}",
                "server_error" if status >= 500 else "invalid_request_error",
                "echo_error",
            )
        if model == "gpt-redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        if model == "gpt-slow" and not body.get("stream"):
            return await self._slow_json(request, body, tag)
        if body.get("stream"):
            return await self._stream(request, body, model, tag)
        text = _last_user_text(body)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": f"echo: {text}",
            "refusal": None,
            "annotations": [],
        }
        finish = "stop"
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {"name": name, "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": _usage(11, 5),
                "service_tier": "default",
            },
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    async def _slow_json(
        self, request: web.Request, body: dict[str, Any], tag: str
    ) -> web.Response:
        delay = float((body.get("metadata") or {}).get("delay", 30))
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                self.recorder.closed_at[tag] = time.monotonic()
                raise asyncio.CancelledError
            await asyncio.sleep(0.005)
        return _error(500, "slow request was not cancelled", "server_error")

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str, tag: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        sent = 0
        try:
            await response.write(_chunk(model, {"role": "assistant", "content": ""}))
            if model == "gpt-slow":
                for _ in range(1500):
                    await asyncio.sleep(0.02)
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        raise ConnectionResetError
                    await response.write(_chunk(model, {"content": "tick "}))
            elif model == "gpt-huge":
                total = int((body.get("metadata") or {}).get("bytes", 10_000_000))
                piece = "x" * 16_000
                while sent < total:
                    frame = _chunk(model, {"content": piece})
                    await response.write(frame)
                    sent += len(frame)
                    self.recorder.bytes_sent[tag] = sent
            elif model in {"gpt-fail-mid", "gpt-cut", "gpt-bad-chunk", "gpt-odd-chunk"}:
                await response.write(_chunk(model, {"content": "partial "}))
                await response.write(_chunk(model, {"content": "answer"}))
                if model == "gpt-bad-chunk":
                    await response.write(b'data: {"id":"chatcmpl-fake","choices":[{"ind\n\n')
                    await response.write(b"data: [DONE]\n\n")
                    return response
                if model == "gpt-odd-chunk":
                    odd = {"id": "chatcmpl-fake", "object": "chat.completion.chunk"}
                    await response.write(b"data: " + orjson.dumps({**odd, "choices": ["x"]}))
                    await response.write(b"\n\ndata: [DONE]\n\n")
                    return response
                if model == "gpt-cut":
                    # A drop some time after the last chunk: aiohttp's client discards bytes it has
                    # buffered but not yet handed out when the connection dies in the same instant.
                    await asyncio.sleep(0.1)
                    assert request.transport is not None
                    request.transport.close()
                    return response
                error = {
                    "error": {
                        "message": "upstream overloaded",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
                return response
            else:
                words = f"echo: {_last_user_text(body)}".split(" ")
                for i, word in enumerate(words):
                    await response.write(_chunk(model, {"content": ("" if i == 0 else " ") + word}))
            await response.write(_chunk(model, {}, "stop"))
            if include_usage and model != "gpt-no-usage":
                usage = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": _usage(11, 5),
                }
                await response.write(b"data: " + orjson.dumps(usage) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.recorder.closed_at[tag] = time.monotonic()
            raise
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        self.recorder.requests.append(body)
        self.recorder.paths.append(request.path_qs)
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, _ in enumerate(inputs):
            vector = [0.1 * (i + 1), 0.2, 0.3]
            if body.get("encoding_format") == "base64":
                import base64
                import struct

                encoded: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )
