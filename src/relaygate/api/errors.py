"""Exception handlers: every error leaves in OpenAI's envelope, never with a stack trace."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from relaygate.errors import GatewayError

log = logging.getLogger("relaygate.api")


def error_response(error: GatewayError) -> Response:
    """The JSON response for `error`."""
    return Response(
        error.to_bytes(),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


async def gateway_error(_request: Request, exc: Exception) -> Response:
    """GatewayError -> its envelope."""
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (404 path, 405 method) -> the envelope, keeping `Allow`."""
    assert isinstance(exc, HTTPException)
    message = {404: "unknown endpoint", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return error_response(GatewayError(exc.status_code, message, headers=dict(exc.headers or {})))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else: a 500 with the request id, details only in the log (which has no secrets)."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.error(
        "unhandled error in %s (request %s): %s", request.url.path, request_id, type(exc).__name__
    )
    return error_response(GatewayError(500, f"internal error (request id {request_id})"))
