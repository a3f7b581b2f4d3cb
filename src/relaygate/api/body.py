"""Reading request bodies: size cap, JSON parsing, clear 4xx errors."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request

from relaygate.errors import GatewayError
from relaygate.server import extensions


async def read_body(request: Request, max_bytes: int, read_timeout: float) -> bytes:
    """The raw body; 408 if slower than `read_timeout`, 413 over `max_bytes`.

    When the server says the whole body has arrived (`server.extensions.BODY`), nothing can be
    slow, and no timer is set."""
    extension = extensions.offered(request.scope, extensions.BODY)
    if extension is not None and extension["complete"]():
        return await _read(request, max_bytes)
    try:
        async with asyncio.timeout(read_timeout):
            return await _read(request, max_bytes)
    except TimeoutError:
        raise GatewayError(
            408,
            f"the request body did not arrive within {read_timeout:g} s",
            code="request_timeout",
        ) from None


def parse_json(body: bytes, max_bytes: int | None = None) -> dict[str, Any]:
    """`body` as a JSON object; 413 over `max_bytes` (a key's own cap), 400 if not JSON."""
    if max_bytes is not None and len(body) > max_bytes:
        raise _too_large(max_bytes)
    if not body:
        raise GatewayError(400, "the request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400,
            f"the request body is not valid JSON ({exc.msg} at position {exc.pos})",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the request body must be a JSON object", code="invalid_json")
    return data


async def _read(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, "invalid Content-Length header")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> GatewayError:
    return GatewayError(
        413, f"the request body exceeds the limit of {max_bytes} bytes", code="request_too_large"
    )
