"""Exception handlers: every error leaves in OpenAI's envelope, never with a stack trace."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
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
    """Anything else: a 500 with the request id, details only in the log (which has no secrets).

    A client that closed its connection while sending the body is no error of the gateway: it
    is logged at INFO (the workers' server counts it, `server.stats`), and the answer made here
    goes nowhere."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    if isinstance(exc, ClientDisconnect):
        log.info(
            "the connection closed before the body of %s %s arrived (request %s)",
            request.method,
            request.url.path,
            request_id,
        )
        return error_response(
            GatewayError(
                400,
                "the connection was closed before the request body arrived",
                code="client_disconnected",
            )
        )
    log.error(
        "unhandled error in %s (request %s): %s", request.url.path, request_id, type(exc).__name__
    )
    return error_response(GatewayError(500, f"internal error (request id {request_id})"))
