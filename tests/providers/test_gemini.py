"""The Gemini provider over real HTTP, against a fake that speaks Google's v1beta wire format."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import GatewayError, UpstreamError
from relaygate.providers.aggregate import collect
from relaygate.providers.gemini import SKIP_SIGNATURE, GeminiProvider
from tests.fakes.gemini import (
    API_KEY,
    SIGNATURE,
    TEXT_CHUNKS,
    UNICODE_CHUNKS,
    FakeGemini,
    fake_embedding,
)
from tests.support.servers import serve_in_thread

JSON = dict[str, Any]
WRONG_KEY = "AIzaSyWrong-Key-9876543210zyxwvutsrqpo"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)
DISCO_TOOLS: list[JSON] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for the party",
            "parameters": {
                "type": "object",
                "properties": {"power": {"type": "boolean"}},
                "additionalProperties": False,
            },
        },
    }
    for name in ("power_disco_ball", "start_music", "dim_lights")
]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeGemini, str]]:
    """The fake Gemini API and its v1beta base URL."""
    gemini = FakeGemini()
    with serve_in_thread(gemini.app) as url:
        yield gemini, url + "/v1beta"


def make_config(base_url: str | None, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        name="gem",
        type="gemini",
        base_url=base_url,
        api_key="env:GEMINI_API_KEY",
        models=[ModelConfig(name="flash", upstream="gemini-text")],
        **extra,
    )


@pytest.fixture
async def provider(fake: tuple[FakeGemini, str]) -> AsyncIterator[GeminiProvider]:
    """A provider holding the right key."""
    gemini = GeminiProvider(make_config(fake[1]), {"api_key": API_KEY})
    yield gemini
    await gemini.aclose()


def model(upstream: str) -> ModelConfig:
    return ModelConfig(name="public-name", upstream=upstream)


def chat_body(*messages: JSON, **extra: Any) -> JSON:
    default = ({"role": "user", "content": "How does AI work?"},)
    return {"model": "public-name", "messages": list(messages or default), **extra}


async def chat(provider: GeminiProvider, upstream: str, body: JSON | None = None) -> JSON:
    result = await provider.chat(body or chat_body(), model(upstream))
    ChatCompletion.model_validate(result)
    return result


async def stream(provider: GeminiProvider, upstream: str, body: JSON | None = None) -> list[JSON]:
    chunks = [c async for c in provider.stream_chat(body or chat_body(), model(upstream))]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


async def _replay(chunks: list[JSON]) -> AsyncIterator[JSON]:
    for chunk in chunks:
        yield chunk


async def folded(chunks: list[JSON]) -> JSON:
    return await collect(_replay(chunks))


def comparable(completion: JSON) -> JSON:
    """A completion without what legitimately differs per call: ids, timestamps, signatures."""
    choices = []
    for choice in completion["choices"]:
        message = dict(choice["message"])
        if "tool_calls" in message:
            message["tool_calls"] = [
                {"type": c["type"], "function": c["function"]} for c in message["tool_calls"]
            ]
        choices.append({**choice, "message": message})
    kept = {k: v for k, v in completion.items() if k not in {"id", "created"}}
    return {**kept, "choices": choices}


def sent(fake: tuple[FakeGemini, str]) -> JSON:
    body: JSON = fake[0].recorder.last.body
    return body


async def rejected(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await call
    return info.value


async def first_chunk_error(provider: GeminiProvider, body: JSON, upstream: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await anext(aiter(provider.stream_chat(body, model(upstream))))
    return info.value


# --- request translation ------------------------------------------------------------------------


async def test_roles_become_system_instruction_and_merged_contents(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    body = chat_body(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "How does AI work?"}]},
        {"role": "assistant", "content": "Patterns."},
        {"role": "assistant", "content": [{"type": "text", "text": "More patterns."}]},
        {"role": "user", "content": "Thanks"},
    )
    await chat(provider, "gemini-text", body)
    assert fake[0].recorder.last.path == "/v1beta/models/gemini-text:generateContent"
    assert sent(fake) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "How does AI work?"}]},
            {"role": "model", "parts": [{"text": "Patterns."}, {"text": "More patterns."}]},
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
    }


async def test_sampling_parameters_become_generation_config(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    body = chat_body(
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=256,
        max_tokens=999,
        stop="END",
        n=1,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        reasoning_effort="low",
    )
    await chat(provider, "gemini-text", body)
    assert sent(fake)["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "candidateCount": 1,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "thinkingConfig": {"thinkingBudget": 1024},
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_tokens": 50}, {"maxOutputTokens": 50}),
        ({"stop": ["\n\n", "END"]}, {"stopSequences": ["\n\n", "END"]}),
        ({"reasoning_effort": "none"}, {"thinkingConfig": {"thinkingBudget": 0}}),
        ({"reasoning_effort": "high"}, {"thinkingConfig": {"thinkingBudget": 24576}}),
        ({"response_format": {"type": "text"}}, None),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "answer",
                        "strict": True,
                        "schema": {
                            "type": "object",
                            "properties": {"answer": {"type": "string"}},
                            "required": ["answer"],
                            "additionalProperties": False,
                        },
                    },
                }
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
            },
        ),
    ],
)
async def test_generation_config_variants(
    provider: GeminiProvider,
    fake: tuple[FakeGemini, str],
    extra: JSON,
    expected: JSON | None,
) -> None:
    await chat(provider, "gemini-text", chat_body(**extra))
    assert sent(fake).get("generationConfig") == expected


async def test_images_audio_and_files_become_inline_or_file_data(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.WEBP?size=large"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    await chat(provider, "gemini-text", chat_body({"role": "user", "content": content}))
    assert sent(fake)["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {
                    "fileData": {
                        "fileUri": "https://example.com/cat.WEBP?size=large",
                        "mimeType": "image/webp",
                    }
                },
                {"fileData": {"fileUri": "https://example.com/photo", "mimeType": "image/jpeg"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            "messages[0].content[0]",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            "messages[0].content[0]",
        ),
        ({"type": "file", "file": {"file_id": "file-abc123"}}, "messages[0].content[0]"),
        (
            {"type": "video_url", "video_url": {"url": "https://x/y.mp4"}},
            "messages[0].content[0].type",
        ),
    ],
)
async def test_unusable_content_parts_are_rejected(
    provider: GeminiProvider, fake: tuple[FakeGemini, str], part: JSON, param: str
) -> None:
    before = len(fake[0].recorder.requests)
    error = await rejected(
        chat(provider, "gemini-text", chat_body({"role": "user", "content": [part]}))
    )
    assert (error.status, error.param) == (400, param)
    assert len(fake[0].recorder.requests) == before


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, None),
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        (
            {"type": "function", "function": {"name": "dim_lights"}},
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["dim_lights"]}},
        ),
    ],
)
async def test_tools_and_tool_choice(
    provider: GeminiProvider,
    fake: tuple[FakeGemini, str],
    tool_choice: Any,
    expected: JSON | None,
) -> None:
    tools = [*DISCO_TOOLS, {"type": "function", "function": {"name": "no_args"}}]
    await chat(provider, "gemini-tools", chat_body(tools=tools, tool_choice=tool_choice))
    body = sent(fake)
    declarations = body["tools"][0]["functionDeclarations"]
    assert len(body["tools"]) == 1
    assert declarations[0] == {
        "name": "power_disco_ball",
        "description": "power_disco_ball for the party",
        "parametersJsonSchema": DISCO_TOOLS[0]["function"]["parameters"],
    }
    assert [d["name"] for d in declarations] == [
        "power_disco_ball",
        "start_music",
        "dim_lights",
        "no_args",
    ]
    assert declarations[3] == {"name": "no_args"}
    assert body.get("toolConfig") == expected


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": DISCO_TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, "tools[0].type"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"reasoning_effort": {"effort": "low"}}, "reasoning_effort"),
        ({"stop": [1, 2]}, "stop"),
    ],
)
async def test_invalid_tool_and_config_values_are_rejected(
    provider: GeminiProvider, fake: tuple[FakeGemini, str], extra: JSON, param: str
) -> None:
    before = len(fake[0].recorder.requests)
    error = await rejected(chat(provider, "gemini-text", chat_body(**extra)))
    assert (error.status, error.param) == (400, param)
    assert len(fake[0].recorder.requests) == before


def tool_history(calls: list[JSON], *results: JSON) -> JSON:
    return chat_body(
        {"role": "user", "content": "Start the party"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *results,
    )


def call(call_id: str, name: str, arguments: str, **extra: Any) -> JSON:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
        **extra,
    }


async def test_tool_calls_and_results_round_trip(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    signed = {"extra_content": {"google": {"thought_signature": SIGNATURE}}}
    body = tool_history(
        [
            call("call_a", "power_disco_ball", '{"power": true}', **signed),
            call("call_b", "start_music", '{"energetic": true, "loud": true}'),
        ],
        {"role": "tool", "tool_call_id": "call_a", "content": '{"status": "spinning"}'},
        {
            "role": "tool",
            "tool_call_id": "call_b",
            "content": [{"type": "text", "text": "playing"}],
        },
        {"role": "user", "content": "Thanks!"},
    )
    await chat(provider, "gemini-text", body)
    assert sent(fake)["contents"] == [
        {"role": "user", "parts": [{"text": "Start the party"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "power_disco_ball", "args": {"power": True}},
                    "thoughtSignature": SIGNATURE,
                },
                {
                    "functionCall": {
                        "name": "start_music",
                        "args": {"energetic": True, "loud": True},
                    }
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "power_disco_ball",
                        "response": {"status": "spinning"},
                    }
                },
                {"functionResponse": {"name": "start_music", "response": {"content": "playing"}}},
                {"text": "Thanks!"},
            ],
        },
    ]


async def test_unsigned_tool_history_gets_googles_placeholder_signature(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    body = tool_history(
        [call("call_a", "dim_lights", '{"brightness": 0.5}'), call("call_b", "start_music", "")],
        {"role": "tool", "tool_call_id": "call_a", "content": "[1, 2]"},
        {"role": "tool", "tool_call_id": "call_b", "content": "ok"},
    )
    await chat(provider, "gemini-text", body)
    model_turn, results = sent(fake)["contents"][1:]
    assert model_turn["parts"] == [
        {
            "functionCall": {"name": "dim_lights", "args": {"brightness": 0.5}},
            "thoughtSignature": SKIP_SIGNATURE,
        },
        {"functionCall": {"name": "start_music", "args": {}}},
    ]
    # A JSON result that is not an object is wrapped, as Gemini's response must be an object.
    assert results["parts"][0] == {
        "functionResponse": {"name": "dim_lights", "response": {"content": "[1, 2]"}}
    }


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "42"])
async def test_tool_call_arguments_that_are_not_a_json_object_are_rejected(
    provider: GeminiProvider, fake: tuple[FakeGemini, str], arguments: str
) -> None:
    before = len(fake[0].recorder.requests)
    body = tool_history([call("call_a", "dim_lights", arguments)])
    error = await rejected(chat(provider, "gemini-text", body))
    assert error.status == 400
    assert error.param == "messages[1].tool_calls[0].function.arguments"
    assert len(fake[0].recorder.requests) == before


async def test_tool_result_for_an_unknown_call_is_rejected(provider: GeminiProvider) -> None:
    body = tool_history(
        [call("call_a", "dim_lights", "{}")],
        {"role": "tool", "tool_call_id": "call_zzz", "content": "ok"},
    )
    error = await rejected(chat(provider, "gemini-text", body))
    assert (error.status, error.param) == (400, "messages[2].tool_call_id")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}),
        ("functions", [{"name": "f", "parameters": {}}]),
        ("function_call", "auto"),
        ("web_search_options", {}),
        ("frobnicate", 1),
    ],
)
async def test_unsupported_parameters_are_rejected_by_name(
    provider: GeminiProvider, fake: tuple[FakeGemini, str], name: str, value: Any
) -> None:
    before = len(fake[0].recorder.requests)
    body = chat_body(**{name: value})
    for error in (
        await rejected(chat(provider, "gemini-text", body)),
        await first_chunk_error(provider, body, "gemini-text"),
    ):
        assert (error.status, error.param, error.code) == (400, name, "unsupported_parameter")
        assert f"'{name}'" in error.message
    assert len(fake[0].recorder.requests) == before


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "function", "name": "f", "content": "x"}, "messages[0].role"),
        (
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "f", "arguments": "{}"},
            },
            "messages[0].function_call",
        ),
        ({"role": "assistant", "content": None, "audio": {"id": "audio_1"}}, "messages[0].audio"),
    ],
)
async def test_unsupported_message_fields_are_rejected(
    provider: GeminiProvider, message: JSON, param: str
) -> None:
    body = chat_body(message, {"role": "user", "content": "go on"})
    error = await rejected(chat(provider, "gemini-text", body))
    assert (error.status, error.param) == (400, param)


async def test_harmless_openai_fields_are_accepted_and_not_forwarded(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    body = chat_body(
        stream_options={"include_usage": True},
        metadata={"team": "a"},
        store=True,
        user="end-user-1",
        safety_identifier="hash",
        prompt_cache_key="k",
        service_tier="auto",
        parallel_tool_calls=False,
        logprobs=False,
        logit_bias={},
        modalities=["text"],
        top_logprobs=None,
    )
    await chat(provider, "gemini-text", body)
    assert sent(fake) == {"contents": [{"role": "user", "parts": [{"text": "How does AI work?"}]}]}


# --- response translation -----------------------------------------------------------------------


async def test_text_answer_and_usage(provider: GeminiProvider) -> None:
    result = await chat(provider, "gemini-text")
    assert result["id"].startswith("chatcmpl-")
    assert result["model"] == "gemini-text"
    [choice] = result["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "".join(TEXT_CHUNKS),
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert result["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 12,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


async def test_parallel_function_calls_all_come_through(provider: GeminiProvider) -> None:
    result = await chat(provider, "gemini-tools", chat_body(tools=DISCO_TOOLS))
    parsed = ChatCompletion.model_validate(result)
    [choice] = parsed.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["power_disco_ball", "start_music", "dim_lights"]  # type: ignore[union-attr]
    assert [orjson.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"power": True},
        {"energetic": True, "loud": True},
        {"brightness": 0.5},
    ]
    ids = [c.id for c in calls]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)
    raw_calls = result["choices"][0]["message"]["tool_calls"]
    assert raw_calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert "extra_content" not in raw_calls[1]


@pytest.mark.parametrize(
    ("upstream", "finish", "content"),
    [
        ("gemini-length", "length", "The history of the Roman Empire spans"),
        ("gemini-safety", "content_filter", None),
        ("gemini-blocked", "content_filter", None),
    ],
)
async def test_finish_reasons(
    provider: GeminiProvider, upstream: str, finish: str, content: str | None
) -> None:
    result = await chat(provider, upstream)
    [choice] = result["choices"]
    assert (choice["finish_reason"], choice["message"]["content"]) == (finish, content)
    chunks = await stream(provider, upstream)
    assert comparable(await folded(chunks)) == comparable(result)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == finish


async def test_blocked_prompt_still_reports_prompt_usage(provider: GeminiProvider) -> None:
    result = await chat(provider, "gemini-blocked")
    assert result["usage"]["prompt_tokens"] == 9
    assert result["usage"]["completion_tokens"] == 0


async def test_thoughts_are_not_content_but_count_as_reasoning_tokens(
    provider: GeminiProvider,
) -> None:
    result = await chat(provider, "gemini-thinking")
    assert result["choices"][0]["message"]["content"] == "42."
    assert result["usage"] == {
        "prompt_tokens": 1200,
        "completion_tokens": 253,
        "total_tokens": 1453,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 250},
    }
    chunks = await stream(provider, "gemini-thinking")
    assert chunks[-1]["usage"] == result["usage"]
    assert "Weighing" not in orjson.dumps(chunks).decode()


async def test_several_candidates_become_several_choices(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    result = await chat(provider, "gemini-text", chat_body(n=2))
    assert sent(fake)["generationConfig"] == {"candidateCount": 2}
    contents = [c["message"]["content"] for c in result["choices"]]
    assert contents == ["".join(TEXT_CHUNKS), "(variant 1) " + "".join(TEXT_CHUNKS)]
    assert [c["index"] for c in result["choices"]] == [0, 1]
    chunks = await stream(provider, "gemini-text", chat_body(n=2))
    assert comparable(await folded(chunks)) == comparable(result)


# --- streaming ----------------------------------------------------------------------------------


async def test_stream_chunks_fold_into_the_non_streaming_answer(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    chunks = await stream(provider, "gemini-text")
    assert fake[0].recorder.last.path == "/v1beta/models/gemini-text:streamGenerateContent?alt=sse"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:] if c["choices"]]
    assert [d for d in deltas if d] == list(TEXT_CHUNKS)
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish == [None, None, None, None, "stop"]
    assert chunks[-1]["choices"] == []
    assert len({c["id"] for c in chunks}) == 1
    result = await chat(provider, "gemini-text")
    assert chunks[-1]["usage"] == result["usage"]
    assert comparable(await folded(chunks)) == comparable(result)


async def test_streamed_parallel_tool_calls_are_indexed_across_the_stream(
    provider: GeminiProvider,
) -> None:
    chunks = await stream(provider, "gemini-tools", chat_body(tools=DISCO_TOOLS))
    calls = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert [c["index"] for c in calls] == [0, 1, 2]
    assert [c["function"]["name"] for c in calls] == [
        "power_disco_ball",
        "start_music",
        "dim_lights",
    ]
    assert len({c["id"] for c in calls}) == 3
    assert calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"energetic": True, "loud": True}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    result = await chat(provider, "gemini-tools", chat_body(tools=DISCO_TOOLS))
    assert comparable(await folded(chunks)) == comparable(result)


async def test_unicode_survives_both_ways(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    question = "Qu'est-ce que c'est ? 🤔 日本語"
    body = chat_body({"role": "user", "content": question})
    result = await chat(provider, "gemini-unicode", body)
    assert sent(fake)["contents"][0]["parts"] == [{"text": question}]
    assert result["choices"][0]["message"]["content"] == "".join(UNICODE_CHUNKS)
    chunks = await stream(provider, "gemini-unicode", body)
    assert comparable(await folded(chunks)) == comparable(result)


async def test_stream_ending_without_finish_reason_is_an_error(provider: GeminiProvider) -> None:
    received: list[JSON] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in provider.stream_chat(chat_body(), model("gemini-cut")):
            received.append(chunk)
    error = info.value
    assert (error.status, error.code, error.retryable) == (502, "upstream_disconnected", False)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in received)
    assert text == TEXT_CHUNKS[0] + TEXT_CHUNKS[1]


async def test_stream_dropped_mid_response_is_an_error(provider: GeminiProvider) -> None:
    with pytest.raises(UpstreamError) as info:
        await stream(provider, "gemini-drop")
    assert (info.value.status, info.value.code) == (502, "upstream_disconnected")


async def test_error_event_mid_stream_is_an_error_without_the_key(
    provider: GeminiProvider,
) -> None:
    with pytest.raises(UpstreamError) as info:
        await stream(provider, "gemini-error-mid")
    error = info.value
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", False)
    assert "Internal error" in error.message
    assert API_KEY not in error.message and API_KEY not in error.to_bytes().decode()


async def test_closing_the_stream_early_closes_the_upstream_connection(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    chunks = aiter(provider.stream_chat(chat_body(), model("gemini-slow")))
    await anext(chunks)
    await anext(chunks)
    tag = len(fake[0].recorder.requests) - 1
    closed_by_client = time.monotonic()
    await chunks.aclose()  # type: ignore[attr-defined]
    for _ in range(150):  # the fake runs in another thread: poll for up to 3 s
        if tag in fake[0].recorder.closed_at:
            break
        await asyncio.sleep(0.02)
    assert fake[0].recorder.closed_at[tag] - closed_by_client < 1.0


# --- upstream errors and the key ----------------------------------------------------------------


async def test_rate_limit_is_429_with_retry_after(provider: GeminiProvider) -> None:
    for call_ in (chat(provider, "gemini-429"), stream(provider, "gemini-429")):
        with pytest.raises(UpstreamError) as info:
            await call_
        error = info.value
        assert (error.status, error.retry_after, error.retryable) == (429, 7.0, True)
        assert error.headers["Retry-After"] == "7"


async def test_permission_denied_is_a_gateway_failure_without_the_key(
    provider: GeminiProvider,
) -> None:
    with pytest.raises(UpstreamError) as info:
        await chat(provider, "gemini-403")
    error = info.value
    assert (error.status, error.code, error.retryable) == (502, "upstream_auth_failed", True)
    assert API_KEY not in error.to_bytes().decode()


async def test_missing_key_is_a_gateway_failure(fake: tuple[FakeGemini, str]) -> None:
    keyless = GeminiProvider(make_config(fake[1]), {})
    try:
        with pytest.raises(UpstreamError) as info:
            await chat(keyless, "gemini-text")
    finally:
        await keyless.aclose()
    assert (info.value.status, info.value.code) == (502, "upstream_auth_failed")
    assert "x-goog-api-key" not in {k.lower() for k in fake[0].recorder.last.headers}


async def test_wrong_key_is_a_gateway_failure_not_a_client_error(
    fake: tuple[FakeGemini, str],
) -> None:
    wrong = GeminiProvider(make_config(fake[1]), {"api_key": WRONG_KEY})
    calls = (
        lambda: chat(wrong, "gemini-text"),
        lambda: stream(wrong, "gemini-text"),
        lambda: wrong.embed({"model": "e", "input": "x"}, model("text-embedding-004")),
    )
    try:
        for make_call in calls:
            with pytest.raises(UpstreamError) as info:
                await make_call()
            error = info.value
            assert (error.status, error.code, error.retryable) == (
                502,
                "upstream_auth_failed",
                True,
            )
            assert WRONG_KEY not in error.to_bytes().decode()
    finally:
        await wrong.aclose()


async def test_the_key_travels_only_in_its_header(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    start = len(fake[0].recorder.requests)
    await chat(provider, "gemini-text")
    await stream(provider, "gemini-text")
    await provider.embed({"model": "e", "input": ["a"]}, model("text-embedding-004"))
    seen = fake[0].recorder.requests[start:]
    assert len(seen) == 3
    for request in seen:
        assert API_KEY not in request.path and "key=" not in request.path
        assert request.headers["x-goog-api-key"] == API_KEY


async def test_secret_extra_headers_are_sent(fake: tuple[FakeGemini, str]) -> None:
    config = make_config(fake[1], headers={"X-Goog-User-Project": "env:GOOGLE_PROJECT"})
    secrets = {"api_key": API_KEY, "header:X-Goog-User-Project": "my-billing-project"}
    gemini = GeminiProvider(config, secrets)
    try:
        await chat(gemini, "gemini-text")
    finally:
        await gemini.aclose()
    assert fake[0].recorder.last.headers["X-Goog-User-Project"] == "my-billing-project"


async def test_unknown_model_is_a_404_naming_it(provider: GeminiProvider) -> None:
    with pytest.raises(UpstreamError) as info:
        await chat(provider, "gemini-nope")
    assert info.value.status == 404
    assert "models/gemini-nope is not found" in info.value.message


def test_default_base_url_is_googles_v1beta() -> None:
    gemini = GeminiProvider(make_config(None), {"api_key": API_KEY})
    assert gemini.client.base_url == "https://generativelanguage.googleapis.com/v1beta"


# --- embeddings ---------------------------------------------------------------------------------


def decode(embedding: str) -> list[float]:
    """What the official SDK does with a base64 embedding: little-endian float32s."""
    raw = base64.b64decode(embedding)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def validated_embeddings(result: JSON) -> CreateEmbeddingResponse:
    """The result as the official SDK reads it (base64 decoded first, as the SDK does)."""
    # Gemini reports no usage for embeddings; the gateway adds its own count (api/embeddings.py).
    assert "usage" not in result
    data = [
        {
            **d,
            "embedding": decode(d["embedding"])
            if isinstance(d["embedding"], str)
            else d["embedding"],
        }
        for d in result["data"]
    ]
    return CreateEmbeddingResponse.model_validate(
        {**result, "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    )


async def test_embeddings_as_floats(provider: GeminiProvider, fake: tuple[FakeGemini, str]) -> None:
    body = {"model": "public-name", "input": ["alpha #0", "beta #1"], "user": "u1"}
    result = await provider.embed(body, model("text-embedding-004"))
    parsed = validated_embeddings(result)
    assert fake[0].recorder.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent(fake) == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "alpha #0"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "beta #1"}]}},
        ]
    }
    assert parsed.model == "text-embedding-004"
    assert [d.index for d in parsed.data] == [0, 1]
    assert [d.embedding for d in parsed.data] == [fake_embedding(0), fake_embedding(1)]


async def test_embeddings_as_base64_with_dimensions(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    body = {"model": "m", "input": "only #3", "encoding_format": "base64", "dimensions": 6}
    result = await provider.embed(body, model("gemini-embedding-001"))
    assert sent(fake)["requests"][0]["outputDimensionality"] == 6
    assert isinstance(result["data"][0]["embedding"], str)
    [item] = validated_embeddings(result).data
    assert item.embedding == fake_embedding(3, 6)


async def test_configured_embedding_dimensions_are_the_default(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    configured = ModelConfig(name="e", upstream="gemini-embedding-001", embedding_dimensions=5)
    result = await provider.embed({"model": "e", "input": "x #2"}, configured)
    assert sent(fake)["requests"][0]["outputDimensionality"] == 5
    assert result["data"][0]["embedding"] == fake_embedding(2, 5)
    await provider.embed({"model": "e", "input": "x", "dimensions": 3}, configured)
    assert sent(fake)["requests"][0]["outputDimensionality"] == 3


async def test_more_than_100_inputs_are_split_into_batches_in_order(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    start = len(fake[0].recorder.requests)
    texts = [f"chunk #{i}" for i in range(250)]
    result = await provider.embed({"model": "m", "input": texts}, model("text-embedding-004"))
    sizes = [len(r.body["requests"]) for r in fake[0].recorder.requests[start:]]
    assert sizes == [100, 100, 50]
    assert [d["index"] for d in result["data"]] == list(range(250))
    assert [d["embedding"] for d in result["data"]] == [fake_embedding(i) for i in range(250)]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "task_type": "RETRIEVAL_QUERY"}, "task_type"),
    ],
)
async def test_unusable_embedding_requests_are_rejected(
    provider: GeminiProvider, fake: tuple[FakeGemini, str], extra: JSON, param: str
) -> None:
    before = len(fake[0].recorder.requests)
    error = await rejected(provider.embed({"model": "m", **extra}, model("text-embedding-004")))
    assert (error.status, error.param) == (400, param)
    assert len(fake[0].recorder.requests) == before


async def test_no_url_the_fake_ever_saw_carries_a_key(
    provider: GeminiProvider, fake: tuple[FakeGemini, str]
) -> None:
    # Runs last in file order, so it covers every request of the module, errors included.
    await chat(provider, "gemini-text")
    paths = [request.path for request in fake[0].recorder.requests]
    assert not [p for p in paths if API_KEY in p or WRONG_KEY in p or "key=" in p]
