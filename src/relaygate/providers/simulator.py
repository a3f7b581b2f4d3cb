"""The built-in simulator: a real provider for demos, load tests and fault tests. Not an LLM.

It answers with deterministic filler text, streams it with a configurable time to first token and
token rate, calls tools with arguments shaped by their JSON schema, answers JSON mode with a JSON
object, embeds text into deterministic bag-of-words vectors, and injects faults (429 with
Retry-After, 5xx, timeouts, mid-stream disconnects) by configured probability or on request through
`metadata` keys: `simulator_fault` (rate_limit | server_error | timeout | disconnect),
`simulator_reply_tokens`, `simulator_ttft_ms`, `simulator_tokens_per_s`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from relaygate.config.schema import ModelConfig, ProviderConfig, SimulatorSettings
from relaygate.errors import UpstreamError, bad_request
from relaygate.providers.aggregate import collect
from relaygate.providers.base import JSON
from relaygate.tokens.counter import TokenCounter

WORDS = [
    "the",
    "gateway",
    "routes",
    "each",
    "request",
    "to",
    "a",
    "provider",
    "and",
    "streams",
    "tokens",
    "back",
    "while",
    "keeping",
    "keys",
    "safe",
    "budgets",
    "exact",
    "and",
    "every",
    "answer",
    "accounted",
    "for",
    "in",
    "the",
    "usage",
    "ledger",
]


_LONGEST_WAIT_S = 3600.0


def _metadata(body: JSON) -> dict[str, str]:
    meta = body.get("metadata")
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _float(meta: dict[str, str], key: str, default: float) -> float:
    """A numeric simulator parameter; a 400 naming it when it is not a finite number (read
    before the first chunk, so a bad value never cuts a stream that has started)."""
    if key not in meta:
        return default
    try:
        value = float(meta[key])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise bad_request(
            f"metadata.{key} must be a non-negative number",
            param=f"metadata.{key}",
            code="invalid_value",
        )
    return value


def _example(schema: Any, depth: int = 0) -> Any:
    """A value that satisfies simple JSON schemas (enough for tool-call arguments)."""
    if not isinstance(schema, dict) or depth > 4:
        return "value"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _example(sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [_example(schema.get("items"), depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return "Paris" if depth else "value"


class SimulatorProvider:
    """Implements the Provider protocol entirely in-process."""

    def __init__(self, config: ProviderConfig, counter: TokenCounter) -> None:
        self.config = config
        self.settings = config.simulator or SimulatorSettings()
        self.counter = counter
        self._random = random.Random(self.settings.seed)

    def _fault(self, meta: dict[str, str]) -> str | None:
        if "simulator_fault" in meta:
            return meta["simulator_fault"]
        faults = self.settings.faults
        roll = self._random.random()
        for name, probability in (
            ("rate_limit", faults.rate_limit),
            ("server_error", faults.server_error),
            ("timeout", faults.timeout),
            ("disconnect", faults.disconnect_mid_stream),
        ):
            if roll < probability:
                return name
            roll -= probability
        return None

    async def _raise_fault(self, fault: str) -> None:
        name = self.config.name
        if fault == "rate_limit":
            raise UpstreamError(
                429,
                f"provider {name!r} is rate limiting (simulated)",
                retryable=True,
                retry_after=self.settings.faults.retry_after_s,
                code="rate_limit_exceeded",
            )
        if fault == "server_error":
            raise UpstreamError(
                502,
                f"provider {name!r} failed (simulated HTTP 500)",
                retryable=True,
                code="upstream_error",
            )
        if fault == "timeout":
            await asyncio.sleep(self.config.timeouts.first_byte)
            raise UpstreamError(
                504,
                f"provider {name!r} did not answer in time (simulated)",
                retryable=True,
                code="upstream_timeout",
            )

    def _reply_words(self, body: JSON, model: ModelConfig, meta: dict[str, str]) -> list[str]:
        limit = (
            body.get("max_completion_tokens") or body.get("max_tokens") or model.max_output_tokens
        )
        wanted = int(_float(meta, "simulator_reply_tokens", self.settings.max_reply_tokens))
        count = max(1, min(int(limit), wanted))
        seed = hashlib.blake2b(orjson.dumps(body.get("messages")), digest_size=8).digest()
        rng = random.Random(seed)
        return [("" if i == 0 else " ") + rng.choice(WORDS) for i in range(count)]

    def _tool_calls(self, body: JSON) -> list[JSON]:
        tools = [t for t in body.get("tools") or () if isinstance(t, dict) and "function" in t]
        choice = body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return []
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if t["function"].get("name") == wanted] or tools[:1]
        messages = body.get("messages") or []
        if choice == "auto" and messages and messages[-1].get("role") == "tool":
            return []  # the tool already answered: reply with text
        chosen = (
            tools if body.get("parallel_tool_calls", True) and choice != "required" else tools[:1]
        )
        return [
            {
                "id": "call_" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {
                    "name": t["function"].get("name", "tool"),
                    "arguments": orjson.dumps(_example(t["function"].get("parameters"))).decode(),
                },
            }
            for t in chosen
        ]

    async def stream_chat(self, body: JSON, model: ModelConfig) -> AsyncIterator[JSON]:
        """Stream the simulated reply chunk by chunk."""
        meta = _metadata(body)
        fault = self._fault(meta)
        if fault and fault != "disconnect":
            await self._raise_fault(fault)
        # Bounded: a timer the event loop cannot arm would fail the stream.
        ttft = min(_float(meta, "simulator_ttft_ms", self.settings.ttft_ms) / 1000, _LONGEST_WAIT_S)
        rate = _float(meta, "simulator_tokens_per_s", self.settings.tokens_per_s)
        interval = min(1 / rate, _LONGEST_WAIT_S) if rate > 0 else 0.0
        base = {
            "id": "chatcmpl-sim" + uuid.uuid4().hex[:20],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model.upstream_id,
            "system_fingerprint": "fp_simulator",
        }
        prompt_tokens = self.counter.count_messages(body.get("messages") or [], body.get("tools"))
        words = self._reply_words(body, model, meta)  # may refuse a parameter: before chunk one
        await asyncio.sleep(ttft)
        yield {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        calls = self._tool_calls(body)
        pieces: list[JSON]
        if calls:
            pieces = []
            for i, call in enumerate(calls):
                pieces.append(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                args = call["function"]["arguments"]
                step = max(1, len(args) // 3)
                pieces += [
                    {"tool_calls": [{"index": i, "function": {"arguments": args[j : j + step]}}]}
                    for j in range(0, len(args), step)
                ]
            finish = "tool_calls"
        else:
            fmt = body.get("response_format") or {}
            if isinstance(fmt, dict) and fmt.get("type") in {"json_object", "json_schema"}:
                schema = (fmt.get("json_schema") or {}).get("schema", {"properties": {}})
                obj = _example(schema) if fmt.get("type") == "json_schema" else {}
                if not obj:
                    obj = {"answer": "".join(words).strip()}
                words = [orjson.dumps(obj).decode()]
            pieces = [{"content": w} for w in words]
            finish = (
                "stop"
                if len(words)
                < int(body.get("max_completion_tokens") or body.get("max_tokens") or 1 << 30)
                else "length"
            )
        text = ""
        for n, delta in enumerate(pieces):
            if fault == "disconnect" and n >= len(pieces) // 2:
                raise UpstreamError(
                    502,
                    f"provider {self.config.name!r} dropped the connection (simulated)",
                    retryable=False,
                    code="upstream_disconnected",
                )
            if interval:
                await asyncio.sleep(interval)
            text += delta.get("content", "") + "".join(
                (c.get("function") or {}).get("name", "")
                + (c.get("function") or {}).get("arguments", "")
                for c in delta.get("tool_calls", ())
            )
            yield {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
            }
        yield {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
        }
        completion = self.counter.count_text(text)
        yield {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        }

    async def chat(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """The buffered form of the same stream (a TimeoutError after `timeout_s`)."""
        async with asyncio.timeout(timeout_s):
            return await collect(self.stream_chat(body, model))

    async def embed(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Deterministic bag-of-words vectors: similar texts get similar vectors. (Answered at
        once: `timeout_s` cannot run out.)"""
        fault = self._fault(_metadata(body))
        if fault and fault != "disconnect":
            await self._raise_fault(fault)
        raw = body.get("input")
        inputs = (
            [raw]
            if isinstance(raw, str)
            or (isinstance(raw, list) and raw and all(isinstance(v, int) for v in raw))
            else list(raw or [])
        )
        dims = int(body.get("dimensions") or model.embedding_dimensions or 256)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            vector = _bag_of_words(text, dims)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = self.counter.count_embedding_input(raw)
        return {
            "object": "list",
            "data": data,
            "model": model.upstream_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def aclose(self) -> None:
        """Nothing to release."""


def _bag_of_words(text: str, dims: int) -> list[float]:
    vector = [0.0] * dims
    for word in text.lower().split():
        digest = hashlib.blake2b(word.strip(".,;:!?\"'()").encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dims
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
