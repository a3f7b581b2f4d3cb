"""The usage record of a successful answer is written after the answer's bytes are sent, and
is written even when sending fails."""

from __future__ import annotations

import json

import pytest
from starlette.types import Message

from relaygate.api.responses import AnswerThen


async def _receive() -> Message:
    return {"type": "http.disconnect"}


async def test_then_runs_after_the_body_is_handed_to_the_server() -> None:
    events: list[str] = []

    async def send(message: Message) -> None:
        events.append(message["type"])

    answer = AnswerThen({"ok": True}, {"x-relaygate-route": "fast"}, lambda: events.append("then"))
    await answer({"type": "http", "method": "POST"}, _receive, send)
    assert events == ["http.response.start", "http.response.body", "then"]
    assert json.loads(answer.body) == {"ok": True}
    assert (b"x-relaygate-route", b"fast") in answer.raw_headers


async def test_then_still_runs_when_sending_fails() -> None:
    recorded: list[bool] = []

    async def send(message: Message) -> None:
        raise OSError("connection reset")

    answer = AnswerThen({"ok": True}, {}, lambda: recorded.append(True))
    with pytest.raises(OSError):
        await answer({"type": "http", "method": "POST"}, _receive, send)
    assert recorded == [True]
