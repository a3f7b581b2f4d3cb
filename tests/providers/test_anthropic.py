"""The Anthropic provider over real HTTP against a wire-exact fake Messages API.

Every translated request is checked as the fake received it (and the fake rejects what Anthropic
rejects), every answer is validated with the OpenAI SDK's own types, and the fake itself is
checked against the official Anthropic SDK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import GatewayError, UpstreamError
from relaygate.providers.aggregate import collect
from relaygate.providers.anthropic import AnthropicProvider
from tests.fakes.anthropic import (
    API_KEY,
    CACHE_USAGE,
    HELLO,
    PARALLEL_CALLS,
    TOOL_CALL,
    VERSION,
    FakeAnthropic,
    input_json,
)
from tests.support.servers import serve_in_thread

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}
TIME_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "get_time"}}
UNICODE = "Grüße, 世界! 👋🏽 🇫🇷 — ¿qué tal? 🧑‍🚀"


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[tuple[FakeAnthropic, str]]:
    """The fake Anthropic upstream and its base URL."""
    fake = FakeAnthropic()
    with serve_in_thread(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_anthropic: tuple[FakeAnthropic, str]) -> FakeAnthropic:
    return fake_anthropic[0]


def make_config(url: str, headers: dict[str, str] | None = None) -> ProviderConfig:
    return ProviderConfig(
        name="claude-test",
        type="anthropic",
        base_url=url,
        api_key="env:ANTHROPIC_API_KEY",
        headers=headers or {},
        models=[ModelConfig(name="claude")],
    )


@pytest.fixture
async def provider(fake_anthropic: tuple[FakeAnthropic, str]) -> AsyncIterator[AnthropicProvider]:
    """The provider under test, pointed at the fake with the right key."""
    instance = AnthropicProvider(make_config(fake_anthropic[1]), {"api_key": API_KEY})
    yield instance
    await instance.aclose()


def model(upstream: str, max_output_tokens: int = 1024) -> ModelConfig:
    return ModelConfig(name="claude", upstream=upstream, max_output_tokens=max_output_tokens)


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": "Hello"}], **fields}


async def complete(provider: AnthropicProvider, upstream: str, **fields: Any) -> dict[str, Any]:
    """A non-streaming answer, checked against the OpenAI SDK's ChatCompletion type."""
    result = await provider.chat(request(**fields), model(upstream))
    ChatCompletion.model_validate(result)
    return result


async def chunks(provider: AnthropicProvider, upstream: str, **fields: Any) -> list[dict[str, Any]]:
    """Every streamed chunk, each checked against the OpenAI SDK's ChatCompletionChunk type."""
    out = []
    async for chunk in provider.stream_chat(request(**fields), model(upstream)):
        ChatCompletionChunk.model_validate(chunk)
        out.append(chunk)
    return out


async def chunks_until_error(
    provider: AnthropicProvider, upstream: str
) -> tuple[list[dict[str, Any]], UpstreamError]:
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in provider.stream_chat(request(), model(upstream)):
            ChatCompletionChunk.model_validate(chunk)
            received.append(chunk)
    return received, caught.value


def tool_deltas(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        call
        for chunk in received
        for c in chunk["choices"]
        for call in c["delta"].get("tool_calls") or ()
    ]


# --- request translation ---------------------------------------------------------------------


async def test_system_and_developer_lifted_and_history_kept(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Ça va ?"},
    ]
    await complete(provider, "claude-text", messages=messages)
    assert fake.recorder.last == {
        "model": "claude-text",
        "system": "You are terse.\n\nAnswer in French.",
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Ça va ?"},
        ],
    }


async def test_headers_and_path(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    await complete(provider, "claude-text")
    headers = {k.lower(): v for k, v in fake.recorder.headers[-1].items()}
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers


async def test_consecutive_same_role_messages_are_merged(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "third"},
    ]
    await complete(provider, "claude-text", messages=messages)
    assert fake.recorder.last["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "user", "content": "third"},
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1024),
        ({"max_tokens": 50}, 50),
        ({"max_completion_tokens": 70, "max_tokens": 50}, 70),
    ],
)
async def test_max_tokens(
    provider: AnthropicProvider, fake: FakeAnthropic, fields: dict[str, Any], expected: int
) -> None:
    await complete(provider, "claude-text", **fields)
    assert fake.recorder.last["max_tokens"] == expected


async def test_max_tokens_defaults_to_the_models_limit(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.chat(request(), model("claude-text", max_output_tokens=333))
    assert fake.recorder.last["max_tokens"] == 333


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3, "top_p": 0.9}),
        ({"stop": "END"}, {"stop_sequences": ["END"]}),
        ({"stop": ["###", "\n\n"]}, {"stop_sequences": ["###", "\n\n"]}),
        ({"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
        ({"safety_identifier": "hash-9"}, {"metadata": {"user_id": "hash-9"}}),
    ],
)
async def test_sampling_parameters(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    fields: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    await complete(provider, "claude-text", **fields)
    sent = fake.recorder.last
    assert {k: sent[k] for k in expected} == expected


async def test_images_as_base64_and_url_sources(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
        },
    ]
    await complete(provider, "claude-text", messages=[{"role": "user", "content": content}])
    assert fake.recorder.last["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url", ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes", "ftp://example.com/a.png"]
)
async def test_images_anthropic_cannot_take_are_refused(
    provider: AnthropicProvider, fake: FakeAnthropic, url: str
) -> None:
    before = len(fake.recorder.requests)
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(GatewayError) as caught:
        await provider.chat(
            request(messages=[{"role": "user", "content": content}]), model("claude-text")
        )
    assert caught.value.status == 400
    assert caught.value.param == "messages[0].content[0].image_url"
    assert len(fake.recorder.requests) == before


async def test_tools_translated(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    strict_tool = {
        "type": "function",
        "function": {**WEATHER_TOOL["function"], "name": "strict_weather", "strict": True},
    }
    await complete(provider, "claude-text", tools=[WEATHER_TOOL, TIME_TOOL, strict_tool])
    assert fake.recorder.last["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        {
            "name": "strict_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "strict": True,
        },
    ]
    assert "tool_choice" not in fake.recorder.last


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            {"type": "tool", "name": "get_time"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        (
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
            },
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "auto", "parallel_tool_calls": True}, {"type": "auto"}),
    ],
)
async def test_tool_choice(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    fields: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    await complete(provider, "claude-text", tools=[WEATHER_TOOL, TIME_TOOL], **fields)
    assert fake.recorder.last["tool_choice"] == expected


async def test_tool_choice_naming_a_tool_without_tools_is_refused(
    provider: AnthropicProvider,
) -> None:
    with pytest.raises(GatewayError) as caught:
        await provider.chat(request(tool_choice="required"), model("claude-text"))
    assert (caught.value.status, caught.value.param) == (400, "tool_choice")


async def test_tool_calls_and_results_become_blocks(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"東京"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22°C"}]},
        {"role": "user", "content": "And tomorrow?"},
    ]
    await complete(provider, "claude-text", messages=messages, tools=[WEATHER_TOOL])
    assert fake.recorder.last["messages"] == [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"location": "東京"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "22°C"}],
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


async def test_tool_call_without_arguments_sends_an_empty_object(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    call = {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": ""}}
    messages = [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
    ]
    await complete(provider, "claude-text", messages=messages, tools=[TIME_TOOL])
    assert fake.recorder.last["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_t", "name": "get_time", "input": {}},
    ]


@pytest.mark.parametrize("arguments", ['{"location": "Paris"', '["Paris"]', "Paris"])
async def test_invalid_tool_call_arguments_are_refused(
    provider: AnthropicProvider, fake: FakeAnthropic, arguments: str
) -> None:
    before = len(fake.recorder.requests)
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
    ]
    with pytest.raises(GatewayError) as caught:
        await provider.chat(request(messages=messages), model("claude-text"))
    assert caught.value.status == 400
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"
    assert len(fake.recorder.requests) == before


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    ],
)
async def test_json_response_formats_are_refused(
    provider: AnthropicProvider, fake: FakeAnthropic, fmt: dict[str, Any]
) -> None:
    before = len(fake.recorder.requests)
    with pytest.raises(GatewayError) as caught:
        await provider.chat(request(response_format=fmt), model("claude-text"))
    assert (caught.value.status, caught.value.param) == (400, "response_format")
    assert "JSON" in caught.value.message
    assert len(fake.recorder.requests) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("presence_penalty", 0.5),
        ("frequency_penalty", -0.5),
        ("logit_bias", {"50256": -100}),
        ("seed", 7),
        ("audio", {"voice": "alloy", "format": "mp3"}),
        ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}),
        ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
        ("reasoning_effort", "high"),
        ("some_future_field", True),
    ],
)
async def test_parameters_anthropic_cannot_honour_are_refused(
    provider: AnthropicProvider, fake: FakeAnthropic, name: str, value: Any
) -> None:
    before = len(fake.recorder.requests)
    for call in (
        provider.chat(request(**{name: value}), model("claude-text")),
        collect(provider.stream_chat(request(**{name: value}), model("claude-text"))),
    ):
        with pytest.raises(GatewayError) as caught:
            await call
        assert not isinstance(caught.value, UpstreamError)
        assert (caught.value.status, caught.value.param) == (400, name)
        assert f"'{name}'" in caught.value.message
    assert len(fake.recorder.requests) == before


async def test_neutral_values_and_openai_only_fields_are_accepted_and_not_forwarded(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fields = {
        "n": 1,
        "logprobs": False,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "logit_bias": {},
        "modalities": ["text"],
        "response_format": {"type": "text"},
        "stream_options": {"include_usage": True},
        "metadata": {"tag": "x"},
        "store": False,
        "service_tier": "auto",
        "prompt_cache_key": "k",
    }
    await complete(provider, "claude-text", **fields)
    assert set(fake.recorder.last) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"stop": 5}, "stop"),
        ({"messages": [{"role": "system", "content": "Only a system prompt"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "function", "content": "x"}]},
            "messages[1].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "tool", "content": "orphan"}]}, "messages[0].tool_call_id"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tool_choice": "sometimes", "tools": [WEATHER_TOOL]}, "tool_choice"),
    ],
)
async def test_invalid_requests_name_the_parameter(
    provider: AnthropicProvider, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        await provider.chat(request(**fields), model("claude-text"))
    assert (caught.value.status, caught.value.param) == (400, param)


async def test_configured_headers_are_sent_with_secrets_resolved(
    fake_anthropic: tuple[FakeAnthropic, str],
) -> None:
    fake, url = fake_anthropic
    config = make_config(
        url, {"anthropic-beta": "prompt-caching-2024-07-31", "X-Proxy-Token": "env:PROXY_TOKEN"}
    )
    secrets = {"api_key": API_KEY, "header:X-Proxy-Token": "resolved-proxy-token"}
    instance = AnthropicProvider(config, secrets)
    try:
        await instance.chat(request(), model("claude-text"))
    finally:
        await instance.aclose()
    headers = {k.lower(): v for k, v in fake.recorder.headers[-1].items()}
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["x-proxy-token"] == "resolved-proxy-token"
    assert headers["x-api-key"] == API_KEY


async def test_a_configured_anthropic_version_replaces_the_default(
    fake_anthropic: tuple[FakeAnthropic, str],
) -> None:
    instance = AnthropicProvider(
        make_config(fake_anthropic[1], {"Anthropic-Version": "2023-01-01"}), {"api_key": API_KEY}
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await instance.chat(request(), model("claude-text"))
    finally:
        await instance.aclose()
    assert caught.value.status == 400
    assert "anthropic-version: unknown version" in caught.value.message
    sent = {k.lower(): v for k, v in fake_anthropic[0].recorder.headers[-1].items()}
    assert sent["anthropic-version"] == "2023-01-01"


async def test_embeddings_are_refused(provider: AnthropicProvider) -> None:
    with pytest.raises(GatewayError) as caught:
        await provider.embed({"model": "claude", "input": "hello"}, model("claude-text"))
    assert (caught.value.status, caught.value.param) == (400, "model")
    assert "embeddings" in caught.value.message


# --- answer translation ----------------------------------------------------------------------


async def test_text_answer(provider: AnthropicProvider) -> None:
    result = await complete(provider, "claude-text")
    assert result["id"].startswith("msg_")
    assert result["object"] == "chat.completion"
    assert result["model"] == "claude-text"
    assert isinstance(result["created"], int) and result["created"] > 1_600_000_000
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == HELLO
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    assert result["usage"] == {
        "prompt_tokens": 21,
        "completion_tokens": 20,
        "total_tokens": 41,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_text_then_tool_call(provider: AnthropicProvider) -> None:
    result = await complete(provider, "claude-tool", tools=[WEATHER_TOOL])
    message = result["choices"][0]["message"]
    assert message["content"] == "I'll check the current weather in San Francisco for you."
    assert [(c["id"], c["type"], c["function"]["name"]) for c in message["tool_calls"]] == [
        (TOOL_CALL["id"], "function", "get_weather")
    ]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == TOOL_CALL["input"]
    assert result["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("upstream", ["claude-parallel", "claude-parallel-no-text"])
async def test_parallel_tool_calls(provider: AnthropicProvider, upstream: str) -> None:
    result = await complete(provider, upstream, tools=[WEATHER_TOOL, TIME_TOOL])
    message = result["choices"][0]["message"]
    calls = [
        {
            "id": c["id"],
            "name": c["function"]["name"],
            "input": json.loads(c["function"]["arguments"]),
        }
        for c in message["tool_calls"]
    ]
    assert calls == PARALLEL_CALLS
    assert (message["content"] is None) == (upstream == "claude-parallel-no-text")


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_finish_reasons(provider: AnthropicProvider, reason: str, finish: str) -> None:
    result = await complete(provider, f"claude-stop-{reason}")
    assert result["choices"][0]["finish_reason"] == finish
    streamed = await collect(provider.stream_chat(request(), model(f"claude-stop-{reason}")))
    assert streamed["choices"][0]["finish_reason"] == finish


async def test_max_tokens_stop_is_length(provider: AnthropicProvider) -> None:
    result = await complete(provider, "claude-max-tokens", max_tokens=8)
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 8


async def test_cache_usage_counts_in_the_prompt(provider: AnthropicProvider) -> None:
    expected = {
        "prompt_tokens": sum(CACHE_USAGE.values()),
        "completion_tokens": 20,
        "total_tokens": sum(CACHE_USAGE.values()) + 20,
        "prompt_tokens_details": {"cached_tokens": CACHE_USAGE["cache_read_input_tokens"]},
    }
    assert (await complete(provider, "claude-cache"))["usage"] == expected
    assert (await chunks(provider, "claude-cache"))[-1]["usage"] == expected


async def test_unicode_round_trip(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    messages = [{"role": "user", "content": UNICODE}]
    result = await complete(provider, "claude-echo", messages=messages)
    assert fake.recorder.last["messages"] == messages
    assert result["choices"][0]["message"]["content"] == "echo: " + UNICODE
    streamed = await chunks(provider, "claude-echo", messages=messages)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed if c["choices"])
    assert text == "echo: " + UNICODE


# --- streaming -------------------------------------------------------------------------------


async def test_stream_shape(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    received = await chunks(provider, "claude-text")
    assert fake.recorder.last["stream"] is True
    assert received[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    middle = received[1:-2]
    assert len(middle) > 1, "the text arrives in several deltas"
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == HELLO
    assert all(c["choices"][0]["finish_reason"] is None for c in received[:-2])
    assert received[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert received[-1]["choices"] == []
    assert received[-1]["usage"]["prompt_tokens"] == 21
    assert received[-1]["usage"]["completion_tokens"] == 20
    assert {(c["id"], c["model"], c["object"]) for c in received} == {
        (received[0]["id"], "claude-text", "chat.completion.chunk")
    }
    assert received[0]["id"].startswith("msg_")


@pytest.mark.parametrize("upstream", ["claude-parallel", "claude-parallel-no-text"])
async def test_streamed_parallel_tool_calls_reassemble_exactly(
    provider: AnthropicProvider, upstream: str
) -> None:
    deltas = tool_deltas(await chunks(provider, upstream, tools=[WEATHER_TOOL, TIME_TOOL]))
    for index, call in enumerate(PARALLEL_CALLS):
        mine = [d for d in deltas if d["index"] == index]
        assert mine[0] == {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        assert all("id" not in d and "name" not in d["function"] for d in mine[1:])
        assert len(mine) > 2, "arguments arrive in several pieces"
        assert "".join(d["function"]["arguments"] for d in mine) == input_json(call["input"])
    assert {d["index"] for d in deltas} == {0, 1, 2}


async def test_streamed_text_then_tool_call_uses_tool_index_zero(
    provider: AnthropicProvider,
) -> None:
    received = await chunks(provider, "claude-tool", tools=[WEATHER_TOOL])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in received if c["choices"])
    assert text == "I'll check the current weather in San Francisco for you."
    deltas = tool_deltas(received)
    assert {d["index"] for d in deltas} == {0}
    assert "".join(d["function"]["arguments"] for d in deltas) == input_json(TOOL_CALL["input"])
    assert received[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_streamed_tool_call_without_input_has_empty_object_arguments(
    provider: AnthropicProvider,
) -> None:
    folded = await collect(
        provider.stream_chat(request(tools=[TIME_TOOL]), model("claude-tool-no-input"))
    )
    assert folded["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What a client sees in a completion, tool arguments compared as JSON values."""
    message = result["choices"][0]["message"]
    return {
        "model": result["model"],
        "content": message["content"],
        "tool_calls": [
            (c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls") or ()
        ],
        "finish_reason": result["choices"][0]["finish_reason"],
        "usage": result["usage"],
    }


@pytest.mark.parametrize(
    "upstream",
    [
        "claude-text",
        "claude-tool",
        "claude-parallel",
        "claude-parallel-no-text",
        "claude-tool-no-input",
        "claude-max-tokens",
        "claude-cache",
        "claude-echo",
    ],
)
async def test_folded_stream_equals_the_non_streaming_answer(
    provider: AnthropicProvider, upstream: str
) -> None:
    fields = {"tools": [WEATHER_TOOL, TIME_TOOL], "max_tokens": 64}
    folded = await collect(provider.stream_chat(request(**fields), model(upstream)))
    ChatCompletion.model_validate(folded)
    direct = await complete(provider, upstream, **fields)
    assert comparable(folded) == comparable(direct)


async def test_error_event_mid_stream(provider: AnthropicProvider) -> None:
    received, error = await chunks_until_error(provider, "claude-stream-error")
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant", "content": ""},
        {"content": HELLO[:7]},
    ]
    assert error.status == 502
    assert error.retryable is False
    assert "Overloaded" in error.message


async def test_error_event_message_is_redacted(provider: AnthropicProvider) -> None:
    _, error = await chunks_until_error(provider, "claude-stream-error-leaky")
    assert API_KEY not in error.message
    assert API_KEY.encode() not in error.to_bytes()
    assert "[redacted]" in error.message


@pytest.mark.parametrize("upstream", ["claude-stream-cut", "claude-stream-eof"])
async def test_stream_ending_before_message_stop(
    provider: AnthropicProvider, upstream: str
) -> None:
    received, error = await chunks_until_error(provider, upstream)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in received) == HELLO
    assert all(c["choices"][0]["finish_reason"] is None for c in received), "no normal finish"
    assert not any("usage" in c for c in received)
    assert (error.status, error.code) == (502, "upstream_disconnected")


async def test_closing_the_stream_early_closes_the_upstream_connection(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    stream = provider.stream_chat(request(), model("claude-slow"))
    iterator = aiter(stream)
    for _ in range(3):
        await anext(iterator)
    await iterator.aclose()  # type: ignore[attr-defined]
    for _ in range(100):
        if "claude-slow" in fake.recorder.disconnected:
            break
        await asyncio.sleep(0.02)
    assert "claude-slow" in fake.recorder.disconnected


# --- upstream errors -------------------------------------------------------------------------


async def test_rate_limit_keeps_status_and_retry_after(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(request(), model("claude-429"))
    assert (caught.value.status, caught.value.retry_after, caught.value.retryable) == (
        429,
        7.0,
        True,
    )
    assert caught.value.headers["Retry-After"] == "7"
    with pytest.raises(UpstreamError) as streamed:
        await anext(aiter(provider.stream_chat(request(), model("claude-429"))))
    assert (streamed.value.status, streamed.value.retry_after) == (429, 7.0)


async def test_rejected_key_is_a_502_without_the_key(
    fake_anthropic: tuple[FakeAnthropic, str],
) -> None:
    fake, url = fake_anthropic
    wrong = "sk-ant-wrong-key-for-this-test-0000000000"
    instance = AnthropicProvider(make_config(url), {"api_key": wrong})
    try:
        with pytest.raises(UpstreamError) as caught:
            await instance.chat(request(), model("claude-text"))
    finally:
        await instance.aclose()
    assert fake.recorder.headers[-1]["x-api-key"] == wrong
    assert (caught.value.status, caught.value.code) == (502, "upstream_auth_failed")
    for secret in (wrong, API_KEY):
        assert secret not in caught.value.message
        assert secret.encode() not in caught.value.to_bytes()


@pytest.mark.parametrize(("upstream", "status"), [("claude-529", 502), ("claude-500", 502)])
async def test_overload_and_server_errors_are_retryable(
    provider: AnthropicProvider, upstream: str, status: int
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(request(), model(upstream))
    assert (caught.value.status, caught.value.retryable) == (status, True)


async def test_unknown_model_is_anthropics_404(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(request(), model("claude-nope"))
    assert (caught.value.status, caught.value.retryable) == (404, False)
    assert "model: claude-nope" in caught.value.message
    assert caught.value.code == "not_found_error"


async def test_anthropics_validation_message_reaches_the_client(
    provider: AnthropicProvider,
) -> None:
    # A tool result with no tool call before it is valid OpenAI shape but Anthropic refuses it.
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "tool", "tool_call_id": "call_missing", "content": "x"},
    ]
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(request(messages=messages), model("claude-text"))
    assert caught.value.status == 400
    assert caught.value.code == "invalid_request_error"
    assert "tool_result" in caught.value.message


# --- the fake is faithful: the official Anthropic SDK talks to it ---------------------------


@pytest.fixture
def sdk(
    fake_anthropic: tuple[FakeAnthropic, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[anthropic.Anthropic]:
    """The official SDK with the documented x-api-key / 2023-06-01 headers."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = anthropic.Anthropic(
        base_url=fake_anthropic[1],
        api_key=None,
        max_retries=0,
        default_headers={"X-Api-Key": API_KEY, "anthropic-version": VERSION},
    )
    yield client
    client.close()


def sdk_request(model_name: str) -> dict[str, Any]:
    return {
        "model": model_name,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
    }


@pytest.mark.parametrize(
    "upstream",
    ["claude-text", "claude-tool", "claude-parallel", "claude-cache", "claude-max-tokens"],
)
def test_sdk_create_and_stream_agree(sdk: anthropic.Anthropic, upstream: str) -> None:
    created = sdk.messages.create(**sdk_request(upstream))
    assert created.type == "message" and created.role == "assistant"
    with sdk.messages.stream(**sdk_request(upstream)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == created.stop_reason
    assert final.usage == created.usage
    shape = [(b.type, getattr(b, "text", None), getattr(b, "input", None)) for b in created.content]
    assert [
        (b.type, getattr(b, "text", None), getattr(b, "input", None)) for b in final.content
    ] == shape
    assert text == "".join(b.text for b in created.content if b.type == "text")


def test_sdk_sees_parallel_tool_calls(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(**sdk_request("claude-parallel"))
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [{"id": b.id, "name": b.name, "input": b.input} for b in uses] == PARALLEL_CALLS
    assert message.stop_reason == "tool_use"


def test_sdk_error_classes(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(**sdk_request("claude-429"))
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.OverloadedError):
        sdk.messages.create(**sdk_request("claude-529"))
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(**sdk_request("claude-nope"))
    wrong = sdk.with_options(default_headers={"X-Api-Key": "sk-ant-wrong"})
    with pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.messages.create(**sdk_request("claude-text"))
    assert denied.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }


def test_sdk_raises_on_the_error_event(sdk: anthropic.Anthropic) -> None:
    stream = sdk.messages.stream(**sdk_request("claude-stream-error"))
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        events.get_final_message()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


TOOL_USE_TURN = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
}


@pytest.mark.parametrize(
    ("messages", "extra_body", "fragment"),
    [
        (None, {"n": 2}, "n: Extra inputs are not permitted"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            None,
            "roles must alternate",
        ),
        (
            [{"role": "user", "content": "a"}, TOOL_USE_TURN, {"role": "user", "content": "b"}],
            None,
            "without `tool_result` blocks immediately after",
        ),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}], None, "non-empty"),
    ],
)
def test_fake_rejects_what_anthropic_rejects(
    sdk: anthropic.Anthropic,
    messages: list[dict[str, Any]] | None,
    extra_body: dict[str, Any] | None,
    fragment: str,
) -> None:
    body = sdk_request("claude-text")
    if messages is not None:
        body["messages"] = messages
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(**body, extra_body=extra_body)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert fragment in caught.value.body["error"]["message"]  # type: ignore[index]


def test_fake_requires_the_version_header(fake_anthropic: tuple[FakeAnthropic, str]) -> None:
    response = httpx.post(
        fake_anthropic[1] + "/v1/messages",
        json=sdk_request("claude-text"),
        headers={"x-api-key": API_KEY},
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        },
    }


def test_fake_stream_framing(fake_anthropic: tuple[FakeAnthropic, str]) -> None:
    with httpx.stream(
        "POST",
        fake_anthropic[1] + "/v1/messages",
        json={**sdk_request("claude-tool"), "stream": True},
        headers={"x-api-key": API_KEY, "anthropic-version": VERSION},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [block.split("\n") for block in raw.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    payloads = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(len(lines) == 2 for lines in events)
    assert names == [p["type"] for p in payloads]
    text_deltas = names.index("content_block_stop") - 3
    json_deltas = len(names) - names.index("content_block_stop") - 5
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * text_deltas,
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * json_deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert text_deltas > 1 and json_deltas > 2
    first_json = payloads[names.index("content_block_stop") + 2]
    assert first_json["delta"] == {"type": "input_json_delta", "partial_json": ""}
