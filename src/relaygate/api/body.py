"""Reading request bodies: size cap, JSON parsing, clear 4xx errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from relaygate.errors import GatewayError


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object; 413 when over `max_bytes`, 400 when not a JSON object."""
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
    body = b"".join(chunks)
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


def _too_large(max_bytes: int) -> GatewayError:
    return GatewayError(
        413, f"the request body exceeds the limit of {max_bytes} bytes", code="request_too_large"
    )
