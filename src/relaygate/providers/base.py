"""The provider interface. Requests and responses are OpenAI-format dicts on our side of it.

A provider receives the client's validated OpenAI request body (`model` still the public name) and
the `ModelConfig` chosen by the router; it sends the provider's own wire format and returns
OpenAI-format results: a `chat.completion` dict, an async iterator of `chat.completion.chunk`
dicts, or an embeddings `list`. It raises `UpstreamError` for every failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from relaygate.config.schema import ModelConfig, ProviderConfig

JSON = dict[str, Any]


class Provider(Protocol):
    """One configured upstream provider."""

    config: ProviderConfig

    async def chat(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """A non-streaming chat completion in OpenAI format, ended within `timeout_s` (if given)
        by a retryable 504 `UpstreamError` or a `TimeoutError`, so the router needs no timer of
        its own."""
        ...

    def stream_chat(self, body: JSON, model: ModelConfig) -> AsyncIterator[JSON]:
        """A streaming chat completion: OpenAI `chat.completion.chunk` dicts in order.

        The last chunk carries `usage` when the provider reports it; the caller computes usage
        itself otherwise. Closing the iterator early must close the upstream connection.
        """
        ...

    async def embed(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """An OpenAI-format embeddings response, within `timeout_s` as for `chat`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
