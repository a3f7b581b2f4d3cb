"""Streaming through the real gateway process, as a client sees it on the wire.

OpenAI's SSE format, flushing without buffering, heartbeats while the model is silent, upstream
cancellation when the client goes away, backpressure from a slow reader, mid-stream failures,
the buffered fallback, concurrency, and failover that never splices two answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from tests.fakes.openai import FakeOpenAI
from tests.support.gateway import RunningGateway

T = TypeVar("T")

HEARTBEAT = ": keep-alive"
DONE = "data: [DONE]"
CANCEL_DEADLINE_S = 0.1
MB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One SSE frame (the text before its blank line) and when the client received it."""

    text: str
    at: float

    @property
    def is_data(self) -> bool:
        return self.text.startswith("data:")

    def json(self) -> Any:
        assert self.text.startswith("data: ") and self.text != DONE, self.text
        return json.loads(self.text.removeprefix("data: "))


def _frames(response: httpx.Response) -> Iterator[Frame]:
    """The frames of a streaming response in the order and at the time they arrive."""
    buffer = b""
    for piece in response.iter_raw():
        now = time.monotonic()
        buffer += piece
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            yield Frame(frame.decode(), now)
    assert buffer == b"", f"the stream ended in the middle of a frame: {buffer[:200]!r}"


def _headers(gateway: RunningGateway, request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {gateway.key}"}
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


def _chat(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def _stream(
    gateway: RunningGateway, body: dict[str, Any], request_id: str | None = None
) -> contextlib.AbstractContextManager[httpx.Response]:
    return httpx.stream(
        "POST",
        gateway.v1 + "/chat/completions",
        json={**body, "stream": True},
        headers=_headers(gateway, request_id),
        timeout=httpx.Timeout(20, read=10),
    )


def _chunks(frames: list[Frame]) -> list[ChatCompletionChunk]:
    return [ChatCompletionChunk.model_validate(f.json()) for f in frames]


def _content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _eventually(probe: Callable[[], T | None], what: str, timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.005)


def _usage_record(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    """The usage record of `request_id`, waiting for the ledger's periodic flush."""

    def probe() -> dict[str, Any] | None:
        with contextlib.closing(sqlite3.connect(gateway.data_dir / "relaygate.db")) as db:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT * FROM usage_records WHERE request_id = ?", (request_id,)
            ).fetchone()
        time.sleep(0.05)
        return dict(row) if row is not None else None

    return _eventually(probe, f"the usage record of {request_id}")


def _tag() -> str:
    return uuid.uuid4().hex


# --- 1. the wire format ----------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize(
    "model",
    [
        pytest.param("fakeoai/gpt-echo", id="upstream-usage"),
        pytest.param("fakeoai/gpt-no-usage", id="upstream-without-usage"),
        pytest.param("fast", id="simulator"),
    ],
)
def test_sse_wire_format_is_openais(
    gateway: RunningGateway, model: str, include_usage: bool
) -> None:
    body = _chat(model, "format check")
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with _stream(gateway, body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0].strip() == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        raw = response.read().decode()

    # Nothing but `data: <one line>` events separated by blank lines, [DONE] once and last.
    assert raw.endswith("\n\n" + DONE + "\n\n")
    events = [e for e in raw.split("\n\n")[:-1] if e != HEARTBEAT]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    assert events.count(DONE) == 1 and events[-1] == DONE
    chunks = [ChatCompletionChunk.model_validate(json.loads(e[6:])) for e in events[:-1]]

    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f is not None] == ["stop"]
    text = _content(chunks)
    if model.startswith("fakeoai/"):
        assert text == "echo: format check"
    else:
        assert text.strip()

    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        # One usage chunk, last, with no choices: the provider's, or the gateway's own count.
        assert with_usage == [chunks[-1]]
        assert chunks[-1].choices == []
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    else:
        assert with_usage == []
        assert all(c.choices for c in chunks)


# --- 2. no buffering -------------------------------------------------------------------------


def test_chunks_are_flushed_as_they_are_generated(gateway: RunningGateway) -> None:
    tokens, per_second = 20, 20
    body = _chat(
        "fast",
        "flush each token",
        metadata={
            "simulator_tokens_per_s": str(per_second),
            "simulator_reply_tokens": str(tokens),
        },
    )
    arrivals: list[float] = []
    with _stream(gateway, body) as response:
        assert response.status_code == 200
        for frame in _frames(response):
            if frame.is_data and frame.text != DONE:
                chunk = frame.json()
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    arrivals.append(frame.at)
    assert len(arrivals) == tokens
    # The simulator spends (tokens - 1) / rate = 0.95 s between its first and last token. A
    # buffering gateway delivers them all at once; a flushing one spreads them over that time.
    generation = (tokens - 1) / per_second
    assert arrivals[-1] - arrivals[0] >= generation / 2
    assert len(set(arrivals)) >= tokens // 4


# --- 3. heartbeats ---------------------------------------------------------------------------


SILENT_START = {
    "simulator_ttft_ms": "1200",
    "simulator_tokens_per_s": "2",
    "simulator_reply_tokens": "3",
}


def test_heartbeats_while_the_model_is_silent(gateway: RunningGateway) -> None:
    # The shared gateway sends a heartbeat after 0.25 s without output.
    body = _chat("fast", "think first", metadata=SILENT_START)
    with _stream(gateway, body) as response:
        assert response.status_code == 200
        frames = list(_frames(response))
    texts = [f.text for f in frames]
    first_data = next(i for i, f in enumerate(frames) if f.is_data)
    assert texts[:first_data].count(HEARTBEAT) >= 3
    assert set(texts[:first_data]) == {HEARTBEAT}
    # Between the tokens (0.5 s apart) the connection is kept alive too.
    assert texts[first_data:].count(HEARTBEAT) >= 1
    assert texts[-1] == DONE
    data = [f for f in frames if f.is_data and f.text != DONE]
    assert _content(_chunks(data)).strip()


def test_sdk_ignores_heartbeats(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "think first"}]
    stream = client.chat.completions.create(
        model="fast", messages=messages, stream=True, metadata=SILENT_START
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 3
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Same prompt, same deterministic reply as without heartbeats in between.
    reply = client.chat.completions.create(
        model="fast", messages=messages, metadata={"simulator_reply_tokens": "3"}
    )
    assert "".join(pieces) == reply.choices[0].message.content


# --- 4. cancellation on disconnect -----------------------------------------------------------


def test_stream_disconnect_cancels_the_upstream(
    gateway: RunningGateway, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    tag = _tag()
    request_id = "stream-cancel-" + tag
    body = _chat("fakeoai/gpt-slow", "tick forever", metadata={"tag": tag})
    with _stream(gateway, body, request_id) as response:
        assert response.status_code == 200
        received = 0
        for frame in _frames(response):
            received += frame.is_data
            if received == 4:
                break
        disconnected_at = time.monotonic()
        response.close()  # unfinished: the connection is dropped
    closed_at = _eventually(lambda: fake.recorder.closed_at.get(tag), "upstream close")
    assert 0 <= closed_at - disconnected_at < CANCEL_DEADLINE_S

    record = _usage_record(gateway, request_id)
    assert (record["outcome"], record["status"], record["stream"]) == ("cancelled", 499, 1)
    assert record["prompt_tokens"] > 0
    assert record["completion_tokens"] > 0  # the ticks streamed before the disconnect


def test_non_stream_disconnect_cancels_the_upstream(
    gateway: RunningGateway, fake_openai: tuple[FakeOpenAI, str], client: openai.OpenAI
) -> None:
    fake, _ = fake_openai
    tag = _tag()
    request_id = "json-cancel-" + tag
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(
            model="fakeoai/gpt-slow",
            messages=[{"role": "user", "content": "take your time"}],
            metadata={"tag": tag, "delay": "10"},
            extra_headers={"X-Request-ID": request_id},
        )
    gave_up_at = time.monotonic()  # the SDK closed its connection before raising
    closed_at = _eventually(lambda: fake.recorder.closed_at.get(tag), "upstream close")
    assert closed_at - gave_up_at < CANCEL_DEADLINE_S

    record = _usage_record(gateway, request_id)
    assert (record["outcome"], record["status"], record["stream"]) == ("cancelled", 499, 0)
    assert record["prompt_tokens"] > 0
    assert record["completion_tokens"] == 0


# --- 5. backpressure -------------------------------------------------------------------------


def test_slow_client_slows_the_upstream_and_memory_stays_flat(
    gateway: RunningGateway, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    # The body is larger than every socket buffer on the way can hold (on loopback Linux
    # autotunes those to several MB each, ~20 MB in all), so a plateau shows flow control.
    fake, _ = fake_openai
    tag = _tag()
    total = 200_000_000
    payload = json.dumps(
        _chat("fakeoai/gpt-huge", "a lot", stream=True, metadata={"tag": tag, "bytes": total})
    ).encode()
    url = urlsplit(gateway.base_url)
    assert url.hostname and url.port
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {gateway.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    baseline = peak = gateway.rss()

    head = b""
    received = 0
    samples: list[tuple[float, int, int]] = []  # (elapsed s, bytes read, bytes the fake sent)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.settimeout(10)
        sock.connect((url.hostname, url.port))
        sock.sendall(request)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 5:
            piece = sock.recv(1024)  # ~100 KB/s: 1 KB every 10 ms
            assert piece, "the gateway ended the stream early"
            received += len(piece)
            if len(head) < 4096:
                head += piece
            if not samples or elapsed - samples[-1][0] >= 0.1:
                samples.append((elapsed, received, fake.recorder.bytes_sent.get(tag, 0)))
                peak = max(peak, gateway.rss())
            time.sleep(0.01)
        samples.append((elapsed, received, fake.recorder.bytes_sent.get(tag, 0)))
    peak = max(peak, gateway.rss())

    assert head.startswith(b"HTTP/1.1 200")
    assert b"\r\n\r\n" in head and b"data: {" in head
    _, read_mid, sent_mid = next(s for s in samples if s[0] >= 2.5)
    _, read_end, sent_end = samples[-1]
    # The client read about half a megabyte. The upstream filled the buffers on the way and
    # then advanced at about the client's pace (a slow start may still be filling them),
    # nowhere near the size of the body.
    assert 0 < sent_end < total // 4
    assert sent_end - sent_mid <= (read_end - read_mid) + 4 * MB
    # The gateway holds a bounded window, not the body.
    assert peak - baseline < 30 * MB
    # And the upstream stops once the client is gone.
    _eventually(lambda: fake.recorder.closed_at.get(tag), "upstream close")


# --- 6. mid-stream failures ------------------------------------------------------------------


MID_STREAM_FAILURES = [
    pytest.param("fakeoai/gpt-fail-mid", {}, id="upstream-error-event"),
    pytest.param("fakeoai/gpt-cut", {}, id="upstream-connection-cut"),
    pytest.param("fast", {"simulator_fault": "disconnect"}, id="simulator-disconnect"),
]


@pytest.mark.parametrize(("model", "metadata"), MID_STREAM_FAILURES)
def test_mid_stream_failure_ends_with_an_error_event(
    gateway: RunningGateway, model: str, metadata: dict[str, str]
) -> None:
    with _stream(gateway, _chat(model, "fail halfway", metadata=metadata)) as response:
        assert response.status_code == 200
        frames = [f for f in _frames(response) if f.text != HEARTBEAT]
    assert all(f.is_data for f in frames)
    assert DONE not in [f.text for f in frames]
    error = frames[-1].json()
    assert set(error) == {"error"}
    assert error["error"]["message"] and error["error"]["type"]
    partial = _chunks(frames[:-1])
    assert _content(partial)  # what arrived before the failure was delivered
    assert all(c.choices[0].finish_reason is None for c in partial if c.choices)


@pytest.mark.parametrize(("model", "metadata"), MID_STREAM_FAILURES)
def test_sdk_raises_on_mid_stream_failure(
    client: openai.OpenAI, model: str, metadata: dict[str, str]
) -> None:
    stream = client.with_options(timeout=10).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "fail halfway"}],
        stream=True,
        metadata=metadata,
    )
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    # An error event, not a timeout or a broken connection.
    assert not isinstance(info.value, openai.APIConnectionError)
    assert info.value.message
    assert pieces
    if model == "fakeoai/gpt-fail-mid":
        assert "upstream overloaded" in info.value.message


# --- 7. buffered fallback --------------------------------------------------------------------


def test_non_streaming_request_to_a_streaming_provider_is_one_json(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    body = _chat("fast", "buffer this", metadata={"simulator_reply_tokens": "12"})
    response = httpx.post(
        gateway.v1 + "/chat/completions", json=body, headers=_headers(gateway), timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    completion = ChatCompletion.model_validate(response.json())
    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    message = completion.choices[0].message
    assert message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    # The whole streamed answer, assembled.
    streamed = client.chat.completions.create(
        model="fast", messages=body["messages"], metadata=body["metadata"], stream=True
    )
    assert message.content == "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )


# --- 8. concurrency --------------------------------------------------------------------------


async def test_hundred_concurrent_streams(aclient: openai.AsyncOpenAI) -> None:
    async def one(i: int) -> None:
        simulated = i % 2 == 1
        stream = await aclient.chat.completions.create(
            model="fast" if simulated else "fakeoai/gpt-echo",
            messages=[{"role": "user", "content": f"stream number {i}"}],
            stream=True,
            stream_options={"include_usage": True},
            metadata={"simulator_tokens_per_s": "50", "simulator_reply_tokens": "10"},
            timeout=60,
        )
        pieces: list[str] = []
        finishes: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices:
                if chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                if chunk.choices[0].finish_reason:
                    finishes.append(chunk.choices[0].finish_reason)
            if chunk.usage is not None:
                usage = chunk.usage
        assert finishes == ["stop"], i
        assert usage is not None and usage.completion_tokens > 0, i
        if simulated:
            assert len(pieces) == 10, i
        else:
            assert "".join(pieces) == f"echo: stream number {i}"

    await asyncio.gather(*(one(i) for i in range(100)))


# --- 9. failover before the first byte -------------------------------------------------------


def test_stream_failover_before_the_first_byte(
    gateway: RunningGateway, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    tag = _tag()
    with _stream(gateway, _chat("failover", "only once", metadata={"tag": tag})) as response:
        assert response.status_code == 200
        assert response.headers["x-relaygate-attempts"] == "2"
        assert response.headers["x-relaygate-model"] == "gpt-echo"
        frames = [f for f in _frames(response) if f.text != HEARTBEAT]
    assert [f.text for f in frames].count(DONE) == 1 and frames[-1].text == DONE
    chunks = _chunks(frames[:-1])
    assert _content(chunks) == "echo: only once"
    assert [c.choices[0].delta.role for c in chunks if c.choices].count("assistant") == 1
    tried = [
        r["model"] for r in fake.recorder.requests if (r.get("metadata") or {}).get("tag") == tag
    ]
    assert tried == ["gpt-500", "gpt-echo"]
