"""The shared base for every provider that speaks OpenAI's wire format.

The request body passes through untouched except for `model` (replaced by the upstream id) and
`stream_options.include_usage` (always asked for when streaming, so usage is exact; the gateway
strips the usage chunk again when the client did not ask for it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import UpstreamError
from relaygate.providers.base import JSON
from relaygate.providers.http import UpstreamClient
from relaygate.providers.sse import SSEEvent


def configured_headers(config: ProviderConfig, secrets: Mapping[str, str]) -> dict[str, str]:
    """The provider's extra headers, with secret references replaced by their values."""
    return {name: secrets.get(f"header:{name}", value) for name, value in config.headers.items()}


def _well_formed(chunk: Any) -> bool:
    """Whether `chunk` has the shape the gateway reads (an object; `choices` a list of objects
    whose `delta` is an object with text `content`; `usage` an object): anything else is the
    provider's fault."""
    if not isinstance(chunk, dict):
        return False
    choices = chunk.get("choices")
    if choices is not None:
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if not isinstance(choice, dict):
                return False
            delta = choice.get("delta")
            if delta is not None and not (
                isinstance(delta, dict) and isinstance(delta.get("content", ""), str | None)
            ):
                return False
    usage = chunk.get("usage")
    return usage is None or isinstance(usage, dict)


class OpenAICompatibleProvider:
    """OpenAI, vLLM, TGI, Ollama, llama.cpp, Mistral, Groq, Together, DeepSeek, OpenRouter..."""

    default_base_url = "https://api.openai.com/v1"

    def __init__(self, config: ProviderConfig, secrets: Mapping[str, str]) -> None:
        self.config = config
        self.client = UpstreamClient(
            config,
            config.base_url or self.default_base_url,
            self.auth_headers(secrets),
            secrets.values(),
        )

    def auth_headers(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Headers sent with every request: the bearer key plus configured extras."""
        headers = configured_headers(self.config, secrets)
        api_key = secrets.get("api_key")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def chat_path(self, model: ModelConfig) -> str:
        """Path of the chat completions endpoint."""
        return "/chat/completions"

    def embeddings_path(self, model: ModelConfig) -> str:
        """Path of the embeddings endpoint."""
        return "/embeddings"

    def query_params(self) -> dict[str, str] | None:
        """Query parameters added to every call."""
        return None

    def prepare(self, body: JSON, model: ModelConfig) -> JSON:
        """The upstream body: the client's, with the upstream model id."""
        return {**body, "model": model.upstream_id}

    async def chat(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Non-streaming chat completion, passed through."""
        payload = {**self.prepare(body, model), "stream": False}
        payload.pop("stream_options", None)
        client = self.client
        result = await client.post_json(
            self.chat_path(model), payload, self.query_params(), client.end_by(timeout_s)
        )
        if not isinstance(result, dict) or "choices" not in result:
            raise UpstreamError(
                502, f"provider {self.config.name!r} sent an unexpected response", retryable=True
            )
        return result

    async def stream_chat(self, body: JSON, model: ModelConfig) -> AsyncIterator[JSON]:
        """Streaming chat completion: each upstream `data:` event parsed into a chunk dict."""
        payload: dict[str, Any] = {**self.prepare(body, model), "stream": True}
        if self.config.stream_usage:
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        events = self.client.stream_events(self.chat_path(model), payload, self.query_params())
        async with contextlib.aclosing(events):
            async for chunk in self._chunks(events):
                yield chunk

    async def _chunks(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[JSON]:
        name = self.config.name
        async for event in events:
            if event.data == "[DONE]":
                return
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    502,
                    f"provider {name!r} sent an invalid chunk",
                    retryable=False,
                    code="upstream_error",
                ) from None
            if isinstance(chunk, dict) and "error" in chunk:
                error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                message = self.client.redact(str(error.get("message", "stream error")))[:2000]
                raise UpstreamError(
                    502,
                    f"provider {name!r} failed mid-stream: {message}",
                    retryable=False,
                    code="upstream_error",
                )
            if not _well_formed(chunk):
                raise UpstreamError(
                    502,
                    f"provider {name!r} sent a chunk of the wrong shape",
                    retryable=False,
                    code="upstream_error",
                )
            yield chunk
        raise UpstreamError(
            502,
            f"provider {name!r} ended the stream early",
            retryable=False,
            code="upstream_disconnected",
        )

    async def embed(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Embeddings, passed through."""
        client = self.client
        result = await client.post_json(
            self.embeddings_path(model),
            self.prepare(body, model),
            self.query_params(),
            client.end_by(timeout_s),
        )
        if not isinstance(result, dict) or "data" not in result:
            raise UpstreamError(
                502, f"provider {self.config.name!r} sent an unexpected response", retryable=True
            )
        return result

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
