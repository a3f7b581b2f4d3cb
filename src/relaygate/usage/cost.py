"""Price a request from the model catalogue (USD per million tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaygate.config.schema import ModelConfig


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """Read an OpenAI `usage` object (missing fields count as zero)."""
        if not isinstance(usage, dict):
            return cls()
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0)
            if isinstance(details, dict)
            else 0,
        )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI `usage` object for these counts."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


def cost_usd(model: ModelConfig, usage: Usage) -> float:
    """What `usage` costs on `model`; cached input at its own price when one is set. Rounded
    to 1e-10 USD: finer than any real price of a token, and free of the float noise
    (1.3499999999999998e-06 for 1.35e-06)."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = (
        model.cached_input_price if model.cached_input_price is not None else model.input_price
    )
    total = (
        (usage.prompt_tokens - cached) * model.input_price
        + cached * cached_price
        + usage.completion_tokens * model.output_price
    ) / 1_000_000
    return round(total, 10)
