"""Chat completions through the gateway with the official OpenAI SDK (sync and async)."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.fakes.openai import FakeOpenAI
from tests.support.gateway import RunningGateway

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_simulator_chat_sync(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_simulator_chat_async(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(
        model="simulator/sim-small", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices[0].message.content


async def test_async_stream_with_usage(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text
    assert usage is not None and usage.completion_tokens > 0


def test_passthrough_to_openai_upstream(
    client: openai.OpenAI, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    reply = client.chat.completions.create(
        model="fakeoai/gpt-echo",
        messages=[{"role": "user", "content": "ping"}],
        extra_body={"logit_bias": {"50256": -100}, "some_future_field": {"x": [1, 2]}},
        temperature=0.2,
    )
    assert reply.choices[0].message.content == "echo: ping"
    sent = fake.recorder.requests[-1]
    # Unknown fields pass through untouched; the model is the upstream id.
    assert sent["some_future_field"] == {"x": [1, 2]}
    assert sent["logit_bias"] == {"50256": -100}
    assert sent["temperature"] == 0.2
    assert sent["model"] == "gpt-echo"
    # The provider's usage is reported as the provider sent it.
    assert reply.usage is not None and reply.usage.prompt_tokens == 11
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 2


def test_gateway_key_never_reaches_upstream(
    client: openai.OpenAI, gateway: RunningGateway, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    client.chat.completions.create(
        model="fakeoai/gpt-echo", messages=[{"role": "user", "content": "x"}]
    )
    headers = fake.recorder.headers[-1]
    assert gateway.key not in json.dumps(headers)
    assert headers["Authorization"].startswith("Bearer sk-fake-upstream")


def test_azure_deployment_path_and_api_key_header(
    client: openai.OpenAI, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    reply = client.chat.completions.create(
        model="azure-echo", messages=[{"role": "user", "content": "from azure"}]
    )
    assert reply.choices[0].message.content == "echo: from azure"
    assert (
        fake.recorder.paths[-1]
        == "/openai/deployments/gpt-echo/chat/completions?api-version=2024-10-21"
    )
    assert "model" not in fake.recorder.requests[-1]
    assert "api-key" in fake.recorder.headers[-1]
    assert "Authorization" not in fake.recorder.headers[-1]


def test_tool_calling_round_trip(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    follow_up = client.chat.completions.create(
        model="fast",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21}'},
        ],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content


def test_streamed_tool_call_arguments_reassemble(client: openai.OpenAI) -> None:
    tools = [
        WEATHER_TOOL,
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "parameters": {
                    "type": "object",
                    "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                },
            },
        },
    ]
    stream = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=tools,
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                slot = calls.setdefault(delta.index, {"name": "", "args": ""})
                if delta.function and delta.function.name:
                    slot["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    slot["args"] += delta.function.arguments
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["args"]) == {"zone": "UTC"}


def test_json_mode(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Give JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_json_schema_mode(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "A person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


@pytest.mark.parametrize(
    "text", ["héllo wörld", "你好 世界", "emoji 🎉🚀 and ZWJ 👩‍👩‍👧", "RTL مرحبا"]
)
def test_unicode_round_trips(client: openai.OpenAI, text: str) -> None:
    reply = client.chat.completions.create(
        model="fakeoai/gpt-echo", messages=[{"role": "user", "content": text}]
    )
    assert reply.choices[0].message.content == f"echo: {text}"
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="fakeoai/gpt-echo", messages=[{"role": "user", "content": text}], stream=True
        )
        if c.choices
    )
    assert streamed == f"echo: {text}"


def test_routing_headers_and_request_id(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}", "X-Request-ID": "wp-site-42.abc"},
        json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "wp-site-42.abc"
    assert response.headers["x-relaygate-route"] == "fast"
    assert response.headers["x-relaygate-provider"] == "simulator"
    assert response.headers["x-relaygate-model"] == "sim-small"
    assert response.headers["x-relaygate-attempts"] == "1"
    ChatCompletion.model_validate(response.json())


def test_malformed_request_id_is_replaced(gateway: RunningGateway) -> None:
    response = httpx.get(
        gateway.v1 + "/models",
        headers={"Authorization": f"Bearer {gateway.key}", "X-Request-ID": "bad id\twith spaces"},
    )
    assert response.headers["x-request-id"].startswith("req_")


def test_failover_on_retryable_upstream_error(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "again"}]
    )
    assert raw.parse().choices[0].message.content == "echo: again"
    assert raw.headers["x-relaygate-attempts"] == "2"
    assert raw.headers["x-relaygate-model"] == "gpt-echo"


def test_no_failover_on_client_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="no-failover", messages=[{"role": "user", "content": "x"}]
        )
    assert "simulated 400" in info.value.message


def test_usage_is_recorded_with_cost(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fakeoai/gpt-echo",
        messages=[{"role": "user", "content": "bill me"}],
        user="wp-user-7",
    )
    request_id = raw.headers["x-request-id"]
    row = None
    deadline = time.monotonic() + 5
    while row is None and time.monotonic() < deadline:
        with sqlite3.connect(gateway.data_dir / "relaygate.db") as db:
            row = db.execute(
                "SELECT tenant_id, end_user, provider, model, prompt_tokens, completion_tokens,"
                " cached_tokens, cost_usd, status, outcome FROM usage_records"
                " WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        time.sleep(0.1)
    assert row is not None
    assert row[:7] == ("default", "wp-user-7", "fakeoai", "gpt-echo", 11, 5, 2)
    # 9 uncached input at $1/M, 2 cached at $0.5/M, 5 output at $2/M
    assert row[7] == pytest.approx((9 * 1.0 + 2 * 0.5 + 5 * 2.0) / 1e6)
    assert row[8:] == (200, "ok")
