"""Fold a stream of `chat.completion.chunk`s into one `chat.completion` (buffered fallback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from relaygate.providers.base import JSON


class ChunkAccumulator:
    """Accumulates chunks; `result()` gives the equivalent non-streaming response."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: str | None = None
        self.usage: JSON | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: JSON) -> None:
        """Merge one chunk."""
        self.id = self.id or str(chunk.get("id", ""))
        self.model = self.model or str(chunk.get("model", ""))
        self.created = self.created or int(chunk.get("created") or 0)
        if chunk.get("system_fingerprint"):
            self.system_fingerprint = chunk["system_fingerprint"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            state = self._choices.setdefault(
                index,
                {
                    "content": [],
                    "refusal": [],
                    "tool_calls": {},
                    "finish_reason": None,
                    "role": "assistant",
                },
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                state["role"] = delta["role"]
            if delta.get("content"):
                state["content"].append(delta["content"])
            if delta.get("refusal"):
                state["refusal"].append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = state["tool_calls"].setdefault(
                    int(call.get("index", 0)),
                    {"id": "", "type": "function", "name": "", "arguments": []},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                if call.get("extra_content"):
                    # Provider extras such as Gemini's thought signatures must survive buffering.
                    slot["extra_content"] = call["extra_content"]
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["name"] += fn["name"]
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def text(self) -> str:
        """All content produced so far, every choice (for counting completion tokens)."""
        parts: list[str] = []
        for state in self._choices.values():
            parts.extend(state["content"])
            for call in state["tool_calls"].values():
                parts.append(call["name"])
                parts.extend(call["arguments"])
        return "".join(parts)

    def result(self) -> JSON:
        """The `chat.completion` these chunks add up to."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: JSON = {
                "role": state["role"],
                "content": "".join(state["content"]) if state["content"] else None,
                "refusal": "".join(state["refusal"]) if state["refusal"] else None,
            }
            if state["tool_calls"]:
                message["tool_calls"] = [
                    _tool_call(c) for _, c in sorted(state["tool_calls"].items())
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": state["finish_reason"] or "stop",
                }
            )
        out: JSON = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.system_fingerprint:
            out["system_fingerprint"] = self.system_fingerprint
        if self.usage:
            out["usage"] = self.usage
        return out


def _tool_call(slot: dict[str, Any]) -> JSON:
    call: JSON = {
        "id": slot["id"],
        "type": slot["type"],
        "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
    }
    if "extra_content" in slot:
        call["extra_content"] = slot["extra_content"]
    return call


async def collect(chunks: AsyncIterator[JSON]) -> JSON:
    """Drain a chunk stream into one completion."""
    acc = ChunkAccumulator()
    async for chunk in chunks:
        acc.add(chunk)
    return acc.result()
