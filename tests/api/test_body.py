"""`read_body`: the whole body, 413 over the cap, 408 when it is slow; with the workers' server
saying the body has arrived (`relaygate.body`), the same answers without a timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from relaygate.api.body import read_body
from relaygate.errors import GatewayError
from relaygate.server import extensions


def _request(parts: list[bytes], *, complete: bool | None, stall: bool = False) -> Request:
    """A POST whose `receive` hands out `parts`, then (if `stall`) never returns."""
    scope: dict[str, Any] = {"type": "http", "method": "POST", "headers": []}
    if complete is not None:
        scope["extensions"] = {extensions.BODY: {"complete": lambda: complete}}
    pending = list(parts)

    async def receive() -> dict[str, Any]:
        if not pending and stall:
            await asyncio.sleep(3600)
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending) or stall}

    return Request(scope, receive)


@pytest.mark.parametrize("complete", [True, None])
async def test_the_whole_body_is_read(complete: bool | None) -> None:
    request = _request([b"ab", b"cd"], complete=complete)
    assert await read_body(request, 100, 1) == b"abcd"


@pytest.mark.parametrize("complete", [True, None])
async def test_a_body_over_the_cap_is_413(complete: bool | None) -> None:
    with pytest.raises(GatewayError) as caught:
        await read_body(_request([b"x" * 60, b"x" * 60], complete=complete), 100, 1)
    assert caught.value.status == 413


@pytest.mark.parametrize("complete", [False, None])
async def test_a_body_that_stops_coming_is_408(complete: bool | None) -> None:
    request = _request([b"partial"], complete=complete, stall=True)
    with pytest.raises(GatewayError) as caught:
        await asyncio.wait_for(read_body(request, 100, 0.2), 5)
    assert caught.value.status == 408
