"""The data-plane dispatcher answers like the Starlette app it sits in front of."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relaygate.api import errors
from relaygate.api.fastpath import FastPaths
from relaygate.api.middleware import RequestIdMiddleware
from relaygate.errors import GatewayError


async def ok(request: Request) -> Response:
    return JSONResponse({"path": request.url.path, "body": (await request.json())})


async def refused(_request: Request) -> Response:
    raise GatewayError(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "3"})


async def broken(_request: Request) -> Response:
    raise RuntimeError("secret detail sk-should-not-leak")


def _app() -> RequestIdMiddleware:
    handlers = {"/v1/ok": ok, "/v1/refused": refused, "/v1/broken": broken}
    app = Starlette(
        routes=[Route(path, handler, methods=["POST"]) for path, handler in handlers.items()],
        exception_handlers={
            GatewayError: errors.gateway_error,
            HTTPException: errors.http_error,
            Exception: errors.unexpected_error,
        },
    )
    return RequestIdMiddleware(FastPaths(app, handlers))


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_a_fast_path_reaches_its_handler(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/ok", json={"a": 1}, headers={"x-request-id": "req-1"})
    assert response.status_code == 200
    assert response.json() == {"path": "/v1/ok", "body": {"a": 1}}
    assert response.headers["x-request-id"] == "req-1"


async def test_a_gateway_error_gets_its_envelope_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/refused", json={})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-request-id"].startswith("req_")


async def test_an_unexpected_error_is_a_500_without_detail(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.post("/v1/broken", json={})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json()["error"]["message"] == f"internal error (request id {request_id})"
    assert "sk-should-not-leak" not in response.text
    assert "sk-should-not-leak" not in caplog.text
    assert "RuntimeError" in caplog.text


async def test_other_methods_and_paths_go_through_starlette(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ok")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["message"] == "method not allowed"
    response = await client.post("/v1/unknown", json={})
    assert response.status_code == 404


async def test_made_request_ids_are_distinct_per_request_and_per_app(
    client: httpx.AsyncClient,
) -> None:
    ids = [(await client.post("/v1/ok", json={})).headers["x-request-id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://gateway"
    )  # another worker process builds its own app
    elsewhere = (await other.post("/v1/ok", json={})).headers["x-request-id"]
    assert elsewhere[:20] != ids[0][:20]  # its own random prefix
    assert elsewhere not in ids
