"""Count prompt and completion tokens the way OpenAI bills them.

Exact for OpenAI encodings; for other model families the same encoding is an estimate (documented
in docs/providers.md). Images count by OpenAI's tile rule (`tokens/images.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import tiktoken

from relaygate.tokens.encodings import load_encoding
from relaygate.tokens.images import image_part_tokens

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
TOKENS_PER_IMAGE = 765  # a 1024x1024 image at detail=high under OpenAI's tile rule


class TokenCounter:
    """Counts tokens with one encoding; built once at startup."""

    def __init__(self, cache_dir: Path, encoding: str = "o200k_base") -> None:
        self._encoding: tiktoken.Encoding = load_encoding(encoding, cache_dir)

    def count_text(self, text: str) -> int:
        """Tokens in a plain string."""
        if not text:
            return 0
        return len(self._encoding.encode_ordinary(text))

    def count_content(self, content: Any) -> int:
        """Tokens in a message `content`: a string or a list of content parts."""
        if isinstance(content, str):
            return self.count_text(content)
        total = 0
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    total += self.count_text(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    total += image_part_tokens(part)
                elif part.get("type") in {"input_image", "image"}:
                    total += TOKENS_PER_IMAGE
        return total

    def count_messages(self, messages: Iterable[Any], tools: Any = None) -> int:
        """Prompt tokens for a chat request (messages, tool calls and tool schemas)."""
        total = REPLY_PRIMING
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += TOKENS_PER_MESSAGE
            total += self.count_text(str(message.get("role", "")))
            total += self.count_content(message.get("content"))
            if message.get("name"):
                total += 1 + self.count_text(str(message["name"]))
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict):
                    fn = call.get("function") or {}
                    total += self.count_text(str(fn.get("name", "")))
                    total += self.count_text(str(fn.get("arguments", "")))
        if tools:
            total += self.count_text(orjson.dumps(tools).decode())
        return total

    def count_embedding_input(self, value: Any) -> int:
        """Tokens in an embeddings `input` (string, list of strings, or token arrays)."""
        if isinstance(value, str):
            return self.count_text(value)
        if isinstance(value, list):
            if value and all(isinstance(v, int) for v in value):
                return len(value)
            return sum(self.count_embedding_input(v) for v in value)
        return 0
