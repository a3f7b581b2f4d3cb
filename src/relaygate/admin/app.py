"""The admin API application, mounted by the gateway at /admin/v1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from relaygate import __version__
from relaygate.admin import issuers, keys, policies, tenants, usage
from relaygate.admin.context import AdminContext
from relaygate.errors import ERROR_TYPES, GatewayError


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(BaseModel):
    """OpenAI's error envelope, used by both planes."""

    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in (
        (400, "Invalid request; `param` names the field"),
        (401, "Missing or invalid admin key"),
        (403, "This admin key may not do this"),
        (404, "Not found (or belongs to another tenant)"),
        (409, "Conflicts with an existing object"),
    )
}


def _envelope(error: GatewayError) -> Response:
    return Response(
        error.to_bytes(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


async def _gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _envelope(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return _envelope(
        GatewayError(
            400, f"{param}: {message}" if param else message, param=param, code="invalid_request"
        )
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "not found" if exc.status_code == 404 else str(exc.detail)
    return _envelope(
        GatewayError(
            exc.status_code, message, type=ERROR_TYPES.get(exc.status_code, "server_error")
        )
    )


def create_admin_app(context: Callable[[], AdminContext]) -> FastAPI:
    """The admin API; `context` returns the live gateway context."""
    app = FastAPI(
        title="Relaygate admin API",
        version=__version__,
        description="Tenants, environments, API keys, rate limits, budgets, JWT issuers and"
        " usage. Authenticate with `Authorization: Bearer <admin key>`.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": "/admin/v1"}],
        exception_handlers={
            GatewayError: _gateway_error,
            RequestValidationError: _validation_error,
            HTTPException: _http_error,
        },
    )
    app.state.context = context
    for module in (tenants, keys, policies, issuers, usage):
        app.include_router(module.router, responses=_ERRORS)
    return app
