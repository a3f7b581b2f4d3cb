"""The shared upstream client: timeouts, size caps, redaction, no redirects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from relaygate.errors import UpstreamError
from relaygate.providers.http import UpstreamClient
from tests.support.upstream import upstream_client

SECRET = "sk-bare-secret-value-123456"


async def _slow_headers(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("wait", "0")))
    return web.json_response({"ok": True})


async def _stall_mid_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: 1\n\n")
    await asyncio.sleep(float(request.query.get("stall", "0")))
    await response.write(b"data: 2\n\n")
    return response


async def _quotes_key(_request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": f"bad key {SECRET} given"}}, status=400)


async def _big(_request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 5000, content_type="application/json")


async def _redirect(_request: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect("http://127.0.0.1:1/")


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/slow", _slow_headers)
    app.router.add_post("/stall", _stall_mid_body)
    app.router.add_post("/quotes", _quotes_key)
    app.router.add_post("/big", _big)
    app.router.add_post("/redirect", _redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _client(base: str, **timeouts: float) -> UpstreamClient:
    return upstream_client(base, SECRET, [SECRET], timeouts=timeouts, max_response_bytes=4096)


async def test_first_byte_may_take_longer_than_between_chunks(base_url: str) -> None:
    client = _client(base_url, first_byte=3, between_chunks=0.2)
    try:
        assert await client.post_json("/slow", {}, {"wait": "0.6"}) == {"ok": True}
    finally:
        await client.aclose()


async def test_first_byte_timeout_is_504(base_url: str) -> None:
    client = _client(base_url, first_byte=0.2)
    try:
        with pytest.raises(UpstreamError) as info:
            await client.post_json("/slow", {}, {"wait": "2"})
        assert info.value.status == 504 and info.value.retryable
    finally:
        await client.aclose()


async def test_a_callers_time_limit_ends_the_call_before_the_providers_timeouts(
    base_url: str,
) -> None:
    client = _client(base_url, first_byte=10, total=10)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(UpstreamError) as info:
            await client.post_json("/slow", {}, {"wait": "3"}, client.end_by(0.3))
        assert info.value.status == 504 and info.value.retryable
        assert 0.25 < loop.time() - started < 1.5
        # A limit beyond the provider's own timeouts changes nothing.
        ok = await client.post_json("/slow", {}, {"wait": "0.1"}, client.end_by(60))
        assert ok == {"ok": True}
    finally:
        await client.aclose()


async def test_stall_between_chunks_is_504_even_across_tasks(base_url: str) -> None:
    client = _client(base_url, between_chunks=0.3)
    try:
        events = client.stream_events("/stall", {}, {"stall": "3"})
        # The first event is read in one task and the rest in another, as the gateway does.
        first = await asyncio.create_task(anext(events))
        assert first.data == "1"
        with pytest.raises(UpstreamError) as info:
            await asyncio.wait_for(anext(events), 2)
        assert info.value.status == 504
        await events.aclose()
    finally:
        await client.aclose()


async def test_total_deadline_holds_across_tasks(base_url: str) -> None:
    client = _client(base_url, total=0.5, between_chunks=10)
    try:
        # The stall (5 s) outlasts the wait (4 s), the deadline (0.5 s) fires well
        # before either: a loaded machine cannot blur the three.
        events = client.stream_events("/stall", {}, {"stall": "5"})
        await asyncio.create_task(anext(events))
        with pytest.raises(UpstreamError) as info:
            await asyncio.wait_for(anext(events), 4)
        assert info.value.status == 504
    finally:
        await client.aclose()


async def test_provider_message_quoting_the_key_is_redacted(base_url: str) -> None:
    client = _client(base_url)
    try:
        with pytest.raises(UpstreamError) as info:
            await client.post_json("/quotes", {})
        assert info.value.status == 400
        assert SECRET not in info.value.message and "[redacted]" in info.value.message
    finally:
        await client.aclose()


async def test_response_size_cap(base_url: str) -> None:
    client = _client(base_url)
    try:
        with pytest.raises(UpstreamError, match="exceeds 4096 bytes"):
            await client.post_json("/big", {})
    finally:
        await client.aclose()


async def test_redirects_are_not_followed(base_url: str) -> None:
    client = _client(base_url)
    try:
        with pytest.raises(UpstreamError, match="redirect") as info:
            await client.post_json("/redirect", {})
        assert info.value.status == 502 and base_url not in info.value.message
    finally:
        await client.aclose()
