"""Resumable streams through a real gateway: a client that drops mid-answer resumes after the
last event it saw (or replays from the start) and gets exactly the answer a plain stream gives;
generation goes on without the client; tenants are isolated; events expire; DELETE stops it;
with Redis another replica can serve the resume."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway, suite_config
from tests.support.services import unique_prefix

PROMPT = [{"role": "user", "content": "tell me something long"}]


def _config(openai_base: str, **streams: Any) -> dict[str, Any]:
    config = suite_config(openai_base)
    config["providers"].append(
        {
            "name": "drip",
            "type": "simulator",
            "simulator": {"ttft_ms": 50, "tokens_per_s": 40, "max_reply_tokens": 40},
            "models": [{"name": "slow", "capabilities": ["chat", "streaming"]}],
        }
    )
    config["streams"] = {"ttl_s": 2, **streams}
    return config


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    running = start_gateway(
        tmp_path_factory.mktemp("resumable"),
        _config(fake_openai[1], store="memory"),
        env={"FAKE_OPENAI_KEY": API_KEY},
    )
    yield running
    running.stop()


def _headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "drip/slow", "messages": PROMPT, "stream": True, **extra}


def _events(lines: Iterator[str], stop_after: int | None = None) -> list[tuple[int | None, str]]:
    """(id, data) of each event; stops early after `stop_after` events."""
    events: list[tuple[int | None, str]] = []
    current: int | None = None
    for line in lines:
        if line.startswith("id: "):
            current = int(line[4:])
        elif line.startswith("data: "):
            events.append((current, line[6:]))
            current = None
            if stop_after is not None and len(events) >= stop_after:
                break
    return events


def _text(events: list[tuple[int | None, str]]) -> str:
    parts = []
    for _, data in events:
        if data == "[DONE]":
            continue
        for choice in orjson.loads(data).get("choices") or ():
            parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


def _reference(gw: RunningGateway) -> str:
    """The answer a plain (non-resumable) stream gives for the same prompt."""
    with httpx.stream(
        "POST", gw.v1 + "/chat/completions", json=_body(), headers=_headers(gw.key), timeout=30
    ) as response:
        assert "x-relaygate-stream-id" not in response.headers
        return _text(_events(response.iter_lines()))


def _start_and_drop(gw: RunningGateway, events: int, **headers: str) -> tuple[str, list[Any], str]:
    with httpx.stream(
        "POST",
        gw.v1 + "/chat/completions",
        json=_body(),
        headers=_headers(gw.key, **{"x-relaygate-resumable": "true"}, **headers),
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        stream_id = response.headers["x-relaygate-stream-id"]
        assert response.headers["x-relaygate-provider"] == "drip"
        seen = _events(response.iter_lines(), stop_after=events)
        request_id = response.headers["x-request-id"]
    return stream_id, seen, request_id


def _resume(gw: RunningGateway, stream_id: str, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{gw.v1}/streams/{stream_id}", headers=_headers(gw.key, **headers), timeout=30
    )


def test_a_dropped_client_resumes_exactly_after_its_last_event(gw: RunningGateway) -> None:
    stream_id, seen, request_id = _start_and_drop(gw, events=3)
    assert [event_id for event_id, _ in seen] == [1, 2, 3]
    resumed = _resume(gw, stream_id, **{"Last-Event-ID": "3"})
    assert resumed.status_code == 200
    rest = _events(iter(resumed.text.splitlines()))
    assert rest[0][0] == 4 and rest[-1][1] == "[DONE]"
    assert [i for i, _ in rest] == list(range(4, 4 + len(rest)))
    assert _text(seen) + _text(rest) == _reference(gw)
    # The generation finished although its client left: one usage record, outcome ok.
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(gw.data_dir / "relaygate.db") as db:
            rows = db.execute(
                "SELECT outcome, completion_tokens FROM usage_records WHERE request_id = ?",
                (request_id,),
            ).fetchall()
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == 1 and rows[0][0] == "ok" and rows[0][1] > 0


def test_without_last_event_id_the_whole_stream_is_replayed(gw: RunningGateway) -> None:
    stream_id, seen, _ = _start_and_drop(gw, events=2)
    replay = _events(iter(_resume(gw, stream_id).text.splitlines()))
    assert replay[:2] == seen
    assert _text(replay) == _reference(gw)


def test_another_tenant_and_unknown_ids_get_404(gw: RunningGateway) -> None:
    stream_id, _, _ = _start_and_drop(gw, events=1)
    admin = Admin(gw)
    other = admin.key(admin.tenant())["key"]
    response = httpx.get(f"{gw.v1}/streams/{stream_id}", headers=_headers(other))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "stream_not_found"
    assert _resume(gw, "rs_unknown").status_code == 404
    assert httpx.delete(f"{gw.v1}/streams/{stream_id}", headers=_headers(other)).status_code == 404


def test_events_expire_after_the_configured_time(gw: RunningGateway) -> None:
    stream_id, _, _ = _start_and_drop(gw, events=1)
    assert _resume(gw, stream_id).status_code == 200  # reads to the end: generation is over
    time.sleep(2.5)
    assert _resume(gw, stream_id).status_code == 404


def test_delete_stops_the_generation(gw: RunningGateway) -> None:
    stream_id, seen, _ = _start_and_drop(gw, events=1)
    assert httpx.delete(f"{gw.v1}/streams/{stream_id}", headers=_headers(gw.key)).status_code == (
        204
    )
    rest = _events(iter(_resume(gw, stream_id, **{"Last-Event-ID": "1"}).text.splitlines()))
    assert all(data != "[DONE]" for _, data in rest)
    assert len(seen) + len(rest) < len(_events(iter(_reference_lines(gw))))


def _reference_lines(gw: RunningGateway) -> list[str]:
    response = httpx.post(
        gw.v1 + "/chat/completions", json=_body(), headers=_headers(gw.key), timeout=30
    )
    return response.text.splitlines()


@pytest.mark.parametrize(
    ("header", "body", "param"),
    [
        ("yes", _body(), "x-relaygate-resumable"),
        ("true", {**_body(), "stream": False}, "x-relaygate-resumable"),
    ],
)
def test_bad_resumable_requests_are_400(
    gw: RunningGateway, header: str, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        gw.v1 + "/chat/completions",
        json=body,
        headers=_headers(gw.key, **{"x-relaygate-resumable": header}),
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_another_replica_serves_the_resume_through_redis(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str], redis_url: str
) -> None:
    config = _config(fake_openai[1])  # store: auto -> redis
    config["server"]["redis_url"] = redis_url
    config["server"]["redis_prefix"] = unique_prefix()
    env = {"FAKE_OPENAI_KEY": API_KEY}
    first = start_gateway(tmp_path, config, env=env)
    second = start_gateway(tmp_path, config, env=env)
    try:
        stream_id, seen, _ = _start_and_drop(first, events=3)
        resumed = _resume(second, stream_id, **{"Last-Event-ID": "3"})
        rest = _events(iter(resumed.text.splitlines()))
        assert rest[0][0] == 4 and rest[-1][1] == "[DONE]"
        assert _text(seen) + _text(rest) == _reference(first)
    finally:
        second.stop()
        first.stop()
