"""Every stream that fails after its first chunk ends with an error event and a clean end.

Through a real gateway process, for every provider type, against the fakes' exact wire formats:
an upstream error event, a dropped connection, a stream that stops without its end marker, a
chunk that is not JSON, a chunk of the wrong shape, and a stream that runs out of time. The
client always gets at least one content chunk, then one error event in OpenAI's envelope, no
`[DONE]`, and a response that ends by the HTTP rules (never a cut connection); the gateway's log
never shows an incomplete ASGI response.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from relaygate.api.chat import _frames
from relaygate.api.validation import ChatSpec
from relaygate.usage.meter import UsageMeter
from tests.fakes import anthropic, gemini
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.gateway import RunningGateway, start_gateway
from tests.support.servers import serve_in_thread


def _models(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "capabilities": ["chat", "streaming"]} for n in names]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    fake_anthropic, fake_gemini = FakeAnthropic(), FakeGemini()
    with (
        serve_in_thread(fake_anthropic.app) as anthropic_url,
        serve_in_thread(fake_gemini.app) as gemini_url,
    ):
        config = {
            "server": {"heartbeat_interval_s": 5},
            "routing": {"retry": {"max_attempts": 1}},
            "providers": [
                {
                    "name": "simulator",
                    "type": "simulator",
                    "simulator": {"ttft_ms": 0, "tokens_per_s": 2000, "max_reply_tokens": 12},
                    "models": _models("sim"),
                },
                {
                    "name": "oai",
                    "type": "openai_compatible",
                    "base_url": fake_openai[1] + "/v1",
                    "api_key": "env:FAKE_OPENAI_KEY",
                    "models": _models("gpt-fail-mid", "gpt-cut", "gpt-bad-chunk", "gpt-odd-chunk"),
                },
                {
                    "name": "oai-short",
                    "type": "openai_compatible",
                    "base_url": fake_openai[1] + "/v1",
                    "api_key": "env:FAKE_OPENAI_KEY",
                    "timeouts": {"connect": 2, "first_byte": 5, "between_chunks": 5, "total": 1},
                    "models": _models("gpt-slow"),
                },
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": anthropic_url,
                    "api_key": "env:FAKE_ANTHROPIC_KEY",
                    "models": _models(
                        "claude-stream-error",
                        "claude-stream-cut",
                        "claude-stream-eof",
                        "claude-stream-malformed",
                    ),
                },
                {
                    "name": "gem",
                    "type": "gemini",
                    "base_url": gemini_url + "/v1beta",
                    "api_key": "env:FAKE_GEMINI_KEY",
                    "models": _models(
                        "gemini-cut", "gemini-drop", "gemini-error-mid", "gemini-malformed"
                    ),
                },
            ],
        }
        running = start_gateway(
            tmp_path_factory.mktemp("stream-endings"),
            config,
            env={
                "FAKE_OPENAI_KEY": API_KEY,
                "FAKE_ANTHROPIC_KEY": anthropic.API_KEY,
                "FAKE_GEMINI_KEY": gemini.API_KEY,
            },
        )
        yield running
        running.stop()


def _stream(gw: RunningGateway, model: str, **extra: Any) -> tuple[int, list[bytes], bytes]:
    """(status, the `data:` payloads, the raw body) of a streamed chat request, read to its
    end; httpx raises if the response ends against the HTTP rules (a cut connection)."""
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "tell me something"}],
        **extra,
    }
    headers = {"Authorization": f"Bearer {gw.key}"}
    with httpx.stream(
        "POST", gw.v1 + "/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        raw = response.read()
    events = [
        block.removeprefix(b"data: ")
        for block in raw.replace(b"\r\n", b"\n").split(b"\n\n")
        if block.startswith(b"data: ")
    ]
    return response.status_code, events, raw


CASES = {
    "oai/gpt-fail-mid": "upstream_error",
    "oai/gpt-cut": "upstream_disconnected",
    "oai/gpt-bad-chunk": "upstream_error",
    "oai/gpt-odd-chunk": "upstream_error",
    "oai-short/gpt-slow": "upstream_timeout",
    "claude/claude-stream-error": "upstream_error",
    "claude/claude-stream-cut": "upstream_disconnected",
    "claude/claude-stream-eof": "upstream_disconnected",
    "claude/claude-stream-malformed": "upstream_error",
    "gem/gemini-cut": "upstream_disconnected",
    "gem/gemini-drop": "upstream_disconnected",
    "gem/gemini-error-mid": "upstream_error",
    "gem/gemini-malformed": "upstream_error",
}


@pytest.mark.parametrize(("model", "code"), CASES.items(), ids=list(CASES))
def test_a_failure_after_the_first_chunk_ends_with_an_error_event(
    gateway: RunningGateway, model: str, code: str
) -> None:
    status, events, raw = _stream(gateway, model)
    assert status == 200
    assert b"[DONE]" not in raw
    chunks = [orjson.loads(e) for e in events]
    assert chunks[0]["object"] == "chat.completion.chunk"  # the stream had started
    *_, last = chunks
    assert set(last) == {"error"}, last
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert last["error"]["code"] == code and last["error"]["type"] in {
        "upstream_error",
        "timeout_error",
    }
    assert all("error" not in c for c in chunks[:-1])  # exactly one error event, the last
    for secret in (API_KEY, anthropic.API_KEY, gemini.API_KEY):
        assert secret not in raw.decode()


def test_the_simulator_fails_mid_stream_with_an_error_event(gateway: RunningGateway) -> None:
    status, events, raw = _stream(
        gateway, "simulator/sim", metadata={"simulator_fault": "disconnect"}
    )
    assert status == 200 and b"[DONE]" not in raw
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == "upstream_disconnected"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "lots"])
def test_a_bad_simulator_parameter_is_a_400_before_the_stream_starts(
    gateway: RunningGateway, value: str
) -> None:
    for key in ("simulator_reply_tokens", "simulator_ttft_ms", "simulator_tokens_per_s"):
        status, _, raw = _stream(gateway, "simulator/sim", metadata={key: value})
        assert status == 400, raw
        error = orjson.loads(raw)["error"]
        assert (error["param"], error["code"]) == (f"metadata.{key}", "invalid_value")


def test_the_gateway_never_left_a_response_incomplete(gateway: RunningGateway) -> None:
    # Runs after the cases above (same module, file order).
    logs = gateway.logs()
    assert "ASGI callable returned without completing response" not in logs
    assert "Traceback" not in logs
    assert "Exception in ASGI application" not in logs


async def test_an_unexpected_exception_mid_stream_is_an_error_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The last resort for a gateway bug after the response started (no provider is known to
    # raise one any more): an error event with the request id, a log line naming only the type.
    finished: list[tuple[int, str]] = []
    ledger: Any = SimpleNamespace(
        meter=UsageMeter(SimpleNamespace(count_text=lambda text: len(text.split()))),  # type: ignore[arg-type]
        admission=SimpleNamespace(reservation=None),
        attempted=None,
        request_id="req_bug",
        finish=lambda usage, status, outcome: finished.append((status, outcome)),
    )
    gw: Any = SimpleNamespace(
        config=SimpleNamespace(budgets=SimpleNamespace(stream_overrun="finish")),
        counter=SimpleNamespace(count_messages=lambda messages, tools: 3),
    )
    first = {"id": "c", "object": "chat.completion.chunk", "choices": []}

    async def chunks() -> Any:
        yield {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
        raise KeyError("secret request content")

    spec = ChatSpec(model="m", stream=True, include_usage=False, end_user=None, needs=frozenset())
    frames = [frame async for frame in _frames(gw, {}, spec, first, chunks(), ledger)]
    assert frames[-1].startswith(b"data: {")
    error = orjson.loads(frames[-1].removeprefix(b"data: "))["error"]
    assert error["type"] == "server_error" and "req_bug" in error["message"]
    assert not any(b"[DONE]" in f for f in frames)
    assert finished == [(500, "error")]
    assert "KeyError" in caplog.text and "secret request content" not in caplog.text
