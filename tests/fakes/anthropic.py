"""A fake Anthropic upstream that speaks the documented Messages API wire format.

`POST /v1/messages` only. Requests are checked as Anthropic checks them: `x-api-key` (401
`authentication_error`), `anthropic-version` (400), and the body (400 `invalid_request_error`):
unknown top-level fields, missing `max_tokens`, roles that do not alternate, empty text blocks,
`tool_use` ids without `tool_result` blocks in the very next message, tool results after other
content, malformed image sources. Errors use Anthropic's shape
`{"type": "error", "error": {"type": ..., "message": ...}}`.

The answer is chosen by the request's `model`:
- `claude-text`: one text block (the documented "Hi! My name is Claude." example).
- `claude-echo`: "echo: " + the last user text (for unicode round trips).
- `claude-tool`: text, then one `tool_use` block (`TOOL_CALL`).
- `claude-parallel`: text, then three `tool_use` blocks (`PARALLEL_CALLS`).
- `claude-parallel-no-text`: the three `tool_use` blocks only.
- `claude-tool-no-input`: one `tool_use` block with empty input.
- `claude-max-tokens`: text cut short, `stop_reason` max_tokens.
- `claude-cache`: text with prompt-cache read and write counts (`CACHE_USAGE`).
- `claude-stop-<reason>`: text with that `stop_reason` (any documented reason).
- `claude-stream-error`, `claude-stream-error-leaky`: streams stop after the first delta with an
  `error` event (overloaded_error; the leaky one quotes the caller's x-api-key in its message).
- `claude-stream-cut`: the stream's connection is dropped just before `message_stop`.
- `claude-stream-eof`: the stream ends cleanly but without `message_stop`.
- `claude-stream-malformed`: after the first delta, an event whose data is not JSON.
- `claude-slow`: streams "tick " every 20 ms for up to 10 s, recording when the client leaves.
- `claude-429` (rate_limit_error, `retry-after: 7`), `claude-500` (api_error), `claude-529`
  (overloaded_error); any other model is a 404 not_found_error, as Anthropic answers.
Streamed answers are the same messages cut into the documented event sequence: message_start,
per block content_block_start / content_block_delta... / content_block_stop (a `ping` after the
first block start; tool input as an empty then several `input_json_delta` pieces), message_delta,
message_stop; `event:` and `data:` lines for each.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

API_KEY = "sk-ant-fake-upstream-key-0123456789abcdef"
VERSION = "2023-06-01"
HELLO = "Hi! My name is Claude."

TOOL_CALL: dict[str, Any] = {
    "id": "toolu_01A09q90qw90lq917835lq9",
    "name": "get_weather",
    "input": {"location": "San Francisco, CA", "unit": "celsius"},
}
PARALLEL_CALLS: list[dict[str, Any]] = [
    {
        "id": "toolu_01Paris000000000000000001",
        "name": "get_weather",
        "input": {"location": "Paris"},
    },
    {
        "id": "toolu_01Tokyo000000000000000002",
        "name": "get_weather",
        "input": {"location": "東京 🗼", "unit": "celsius"},
    },
    {
        "id": "toolu_01Clock000000000000000003",
        "name": "get_time",
        "input": {"timezone": "Asia/Tokyo", "format": {"hour12": False, "fields": ["h", "m"]}},
    },
]
CACHE_USAGE = {
    "input_tokens": 14,
    "cache_creation_input_tokens": 248,
    "cache_read_input_tokens": 1800,
}
STOP_REASONS = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
)
TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "output_config",
    }
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def input_json(value: dict[str, Any]) -> str:
    """The tool input exactly as the fake streams it (Anthropic's spacing, raw UTF-8)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Recorder:
    """What the fake saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        """The body of the most recent request."""
        return self.requests[-1]


def _error(status: int, type_: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return web.json_response(body, status=status, headers={"request-id": "req_fake_error"})


# --- request validation, as Anthropic does it ----------------------------------------------


def _block_error(role: str, block: Any) -> str | None:
    allowed = (
        {"text", "image", "tool_result", "document"} if role == "user" else {"text", "tool_use"}
    )
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in allowed:
        return f"type: Input tag '{kind}' is not valid for a {role} message"
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        return "text: text content blocks must be non-empty"
    if kind == "image":
        source = block.get("source") or {}
        ok = (
            source.get("type") == "base64"
            and source.get("media_type") in IMAGE_TYPES
            and isinstance(source.get("data"), str)
        ) or (source.get("type") == "url" and isinstance(source.get("url"), str))
        return None if ok else "source: invalid image source"
    if kind == "tool_use":
        ok = all(isinstance(block.get(k), str) for k in ("id", "name"))
        return None if ok and isinstance(block.get("input"), dict) else "tool_use: invalid block"
    if kind == "tool_result":
        content = block.get("content", "")
        if not isinstance(block.get("tool_use_id"), str):
            return "tool_use_id: Field required"
        if isinstance(content, list):
            return next((e for b in content if (e := _block_error("user", b))), None)
        return None if isinstance(content, str) else "content: Input should be a valid list"
    return None


def _as_blocks(content: Any) -> list[Any] | None:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content if isinstance(content, list) else None


def _tool_pairing_error(index: int, blocks: list[Any], pending: set[str]) -> str | None:
    kinds = [b.get("type") for b in blocks]
    results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
    count = kinds.count("tool_result")
    if kinds[:count] != ["tool_result"] * count:
        return f"messages.{index}: tool_result blocks must come first in the user message"
    if results - pending:
        return (
            f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks:"
            f" {sorted(results - pending)}. Each `tool_result` block must have a corresponding"
            " `tool_use` block in the previous message."
        )
    if pending - results:
        return (
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks"
            f" immediately after: {', '.join(sorted(pending - results))}"
        )
    return None


def _messages_error(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    previous_role: str | None = None
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if role == previous_role:
            return (
                'messages: roles must alternate between "user" and "assistant", but found'
                f' multiple "{role}" roles in a row'
            )
        blocks = _as_blocks(message.get("content"))
        if blocks is None:
            return f"messages.{i}.content: Input should be a valid list"
        if not blocks and i != len(messages) - 1:
            return f"messages.{i}: all messages must have non-empty content"
        for j, block in enumerate(blocks):
            if error := _block_error(role, block):
                return f"messages.{i}.content.{j}.{error}"
        if error := _tool_pairing_error(i, blocks, pending if role == "user" else set()):
            return error
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        previous_role = role
    return None


def _tools_error(body: dict[str, Any]) -> str | None:
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool.get("name"), str):
            return f"tools.{i}.name: Field required"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{i}.input_schema.type: Input should be 'object'"
        if set(tool) - {"name", "description", "input_schema", "strict", "cache_control"}:
            return f"tools.{i}: Extra inputs are not permitted"
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice.get("type") not in ("auto", "any", "tool", "none"):
        return "tool_choice.type: Input tag is not valid"
    if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
        return "tool_choice.tool.name: Field required"
    extra = set(choice) - {"type", "name", "disable_parallel_tool_use"}
    return f"tool_choice: {sorted(extra)} not permitted" if extra else None


def _scalars_error(body: dict[str, Any]) -> str | None:
    for key in body:
        if key not in TOP_LEVEL_FIELDS:
            return f"{key}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required"
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            return f"{name}: Input should be less than or equal to 1"
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        return "stop_sequences: Input should be a valid list"
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        return "metadata: Extra inputs are not permitted"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list"
    return None


def request_error(body: Any) -> str | None:
    """The message of the 400 Anthropic would answer `body` with, or None if it is valid."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    return _scalars_error(body) or _messages_error(body.get("messages")) or _tools_error(body)


# --- scripted answers ----------------------------------------------------------------------


def _usage(
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> dict[str, Any]:
    created = cache_creation_input_tokens
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cache_read_input_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            blocks = _as_blocks(message.get("content")) or []
            return " ".join(b["text"] for b in blocks if b.get("type") == "text")
    return ""


def _tool_block(call: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", **call}


def _content(model: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str] | None:
    """(content blocks, stop_reason) for a scripted model; None for an unknown one."""
    text = {"type": "text", "text": HELLO}
    if model in {"claude-text", "claude-cache", "claude-slow"} or model.startswith("claude-stream"):
        return [text], "end_turn"
    if model == "claude-echo":
        return [{"type": "text", "text": "echo: " + _last_user_text(body)}], "end_turn"
    if model == "claude-tool":
        lead = {"type": "text", "text": "I'll check the current weather in San Francisco for you."}
        return [lead, _tool_block(TOOL_CALL)], "tool_use"
    if model in {"claude-parallel", "claude-parallel-no-text"}:
        calls = [_tool_block(c) for c in PARALLEL_CALLS]
        lead = {"type": "text", "text": "Let me look up both cities and the time in Tokyo."}
        return ([lead] if model == "claude-parallel" else []) + calls, "tool_use"
    if model == "claude-tool-no-input":
        return [_tool_block({"id": "toolu_01NoInput", "name": "get_time", "input": {}})], "tool_use"
    if model == "claude-max-tokens":
        return [{"type": "text", "text": "The history of the Roman Empire begins"}], "max_tokens"
    reason = model.removeprefix("claude-stop-")
    if model.startswith("claude-stop-") and reason in STOP_REASONS:
        return [{"type": "text", "text": "Done."}], reason
    return None


class _Ids:
    """Message ids that look like Anthropic's and differ per request."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"msg_01Fake{self.count:017d}"


def build_message(message_id: str, model: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The complete (non-streaming) Anthropic message the fake answers `body` with."""
    script = _content(model, body)
    if script is None:
        return None
    content, stop_reason = script
    output = body["max_tokens"] if stop_reason == "max_tokens" else 9 + 11 * len(content)
    usage = _usage(output_tokens=output, **CACHE_USAGE) if model == "claude-cache" else None
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": "###" if stop_reason == "stop_sequence" else None,
        "usage": usage or _usage(21, output),
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if block["type"] == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 7)]
    else:
        start = {**block, "input": {}}
        # Anthropic opens tool input with an empty piece, then streams the JSON in fragments.
        pieces = ["", *_pieces(input_json(block["input"]), 9)] if block["input"] else [""]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": start},
    )
    if index == 0:
        yield "ping", {"type": "ping"}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The documented event sequence that streams `message`."""
    usage = message["usage"]
    opening = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    opening["usage"] = {**usage, "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": opening}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    final_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
    if usage["cache_read_input_tokens"]:
        # Newer API versions repeat the cumulative input counts here; clients must accept both.
        final_usage.update({k: usage[k] for k in CACHE_USAGE})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}
    yield "message_stop", {"type": "message_stop"}


def frame(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic writes it."""
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


class FakeAnthropic:
    """The aiohttp application and its recorder."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._ids = _Ids()
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self.messages)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/messages."""
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _error(400, "invalid_request_error", "There was an issue with your request body")
        self.recorder.requests.append(body)
        self.recorder.headers.append(dict(request.headers))
        key = request.headers.get("x-api-key")
        if not key:
            return _error(401, "authentication_error", "x-api-key header is required")
        if key != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version != VERSION:
            problem = f"anthropic-version: unknown version {version!r}"
            if version is None:
                problem = "anthropic-version: header is required"
            return _error(400, "invalid_request_error", problem)
        if request.content_type != "application/json":
            return _error(400, "invalid_request_error", "content-type must be application/json")
        failure = self._scripted_failure(str(body.get("model")) if isinstance(body, dict) else "")
        if failure is not None:
            return failure
        if error := request_error(body):
            return _error(400, "invalid_request_error", error)
        message = build_message(self._ids.next(), body["model"], body)
        if message is None:
            return _error(404, "not_found_error", f"model: {body['model']}")
        if body.get("stream"):
            return await self._stream(request, message, key)
        return web.json_response(
            message,
            headers={"request-id": "req_fake_" + message["id"]},
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    def _scripted_failure(self, model: str) -> web.Response | None:
        if model == "claude-429":
            response = _error(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            )
            response.headers["retry-after"] = "7"
            return response
        if model == "claude-500":
            return _error(500, "api_error", "Internal server error")
        if model == "claude-529":
            return _error(529, "overloaded_error", "Overloaded")
        return None

    async def _stream(
        self, request: web.Request, message: dict[str, Any], key: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": "req_fake_" + message["id"],
            }
        )
        await response.prepare(request)
        model = message["model"]
        try:
            if model == "claude-slow":
                await self._slow(request, response, message)
                return response
            for name, payload in stream_events(message):
                if name == "message_stop" and model in {"claude-stream-cut", "claude-stream-eof"}:
                    if model == "claude-stream-cut":
                        assert request.transport is not None
                        request.transport.close()
                        return response
                    break
                await response.write(frame(name, payload))
                if name == "content_block_delta" and model == "claude-stream-malformed":
                    await response.write(b'event: content_block_delta\ndata: {"type": "conte\n\n')
                    break
                if name == "content_block_delta" and model.startswith("claude-stream-error"):
                    await response.write(frame("error", self._stream_error(model, key)))
                    break
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.recorder.disconnected.append(model)
            raise
        return response

    def _stream_error(self, model: str, key: str) -> dict[str, Any]:
        message = "Overloaded"
        if model == "claude-stream-error-leaky":
            message = f"Overloaded (request authenticated with {key})"
        return {"type": "error", "error": {"type": "overloaded_error", "message": message}}

    async def _slow(
        self, request: web.Request, response: web.StreamResponse, message: dict[str, Any]
    ) -> None:
        events = stream_events(message)
        await response.write(frame(*next(events)))
        await response.write(frame(*next(events)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError
            tick = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "tick "},
            }
            await response.write(frame("content_block_delta", tick))
