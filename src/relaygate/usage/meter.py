"""Track usage of a request as it happens, including streams that never report usage."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from relaygate.config.schema import ModelConfig
from relaygate.tokens.counter import TokenCounter
from relaygate.usage.cost import Usage, cost_usd

FLUSH_CHARS = 4096


class UsageMeter:
    """Counts completion tokens from deltas in bounded memory when the provider sends no usage."""

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter
        self._pending: list[str] = []
        self._pending_chars = 0
        self._counted = 0
        self.reported: Usage | None = None
        self.started = time.perf_counter()

    def observe_chunk(self, chunk: dict[str, Any]) -> None:
        """Note one streamed chunk: its usage if any, its text otherwise."""
        usage = chunk.get("usage")
        if usage:
            self.reported = Usage.from_openai(usage)
            return
        if self.reported is not None:
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self._add(text)
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                self._add(str(fn.get("name") or "") + str(fn.get("arguments") or ""))

    def _add(self, text: str) -> None:
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= FLUSH_CHARS:
            self._flush()

    def _flush(self) -> None:
        # Tokenising in ~4 KB pieces keeps memory bounded; splitting a word at a piece boundary
        # can add one token per 4 KB, well inside the error of any non-OpenAI estimate.
        self._counted += self._counter.count_text("".join(self._pending))
        self._pending.clear()
        self._pending_chars = 0

    def usage(self, prompt_tokens: Callable[[], int]) -> Usage:
        """Reported usage if the provider sent it, else our own count.

        `prompt_tokens` is called only when needed: tokenising the prompt is the costly part.
        """
        if self.reported is not None:
            return self.reported
        self._flush()
        return Usage(prompt_tokens=prompt_tokens(), completion_tokens=self._counted)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return (time.perf_counter() - self.started) * 1000


def price(model: ModelConfig | None, usage: Usage) -> float:
    """Cost of `usage` on `model` (zero when no model was reached)."""
    return cost_usd(model, usage) if model is not None else 0.0


def completion_text(completion: dict[str, Any]) -> str:
    """The billable output of a `chat.completion`: content plus tool-call names and arguments."""
    parts: list[str] = []
    for choice in completion.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)
