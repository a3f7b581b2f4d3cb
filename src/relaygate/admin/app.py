"""The admin API application, mounted by the gateway at /admin/v1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from relaygate import __version__
from relaygate.admin import (
    budgets,
    environments,
    events,
    issuers,
    keys,
    limits,
    server,
    tenants,
    usage,
    vault,
    webhooks,
)
from relaygate.admin.audit_trail import AuditTrail
from relaygate.admin.context import AdminContext
from relaygate.admin.guard import AdminGuard
from relaygate.admin.reference import render_reference
from relaygate.errors import ERROR_TYPES, GatewayError

log = logging.getLogger("relaygate.admin")

OPENAPI_PATH = "/openapi.json"
REFERENCE_PATH = "/reference"
# The reference page loads nothing: no script, no image, no font; only its inline style.
REFERENCE_CSP = "default-src 'none'; style-src 'unsafe-inline'"


class ErrorDetail(BaseModel):
    """What went wrong; `param` names the offending field when there is one."""

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
        (409, "Conflicts with an existing object, or the object is still in use"),
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


def _param(loc: Any) -> str | None:
    parts = [str(p) for p in (loc or ()) if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    if first.get("type") == "json_invalid":
        return _envelope(GatewayError(400, "the body is not valid JSON", code="invalid_json"))
    param = _param(first.get("loc"))
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    text = f"{param}: {message}" if param else message
    return _envelope(GatewayError(400, text, param=param, code="invalid_request"))


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "not found" if exc.status_code == 404 else str(exc.detail).lower()
    error_type = ERROR_TYPES.get(exc.status_code, "invalid_request_error")
    return _envelope(GatewayError(exc.status_code, message, type=error_type))


async def _unexpected_error(_request: Request, exc: Exception) -> Response:
    log.error("admin API error: %s", type(exc).__name__, exc_info=exc)
    return _envelope(GatewayError(500, "internal error", code="internal_error"))


def create_admin_app(context: Callable[[], AdminContext]) -> FastAPI:
    """The admin API; `context` returns the live gateway context.

    Mount it at `/admin/v1`; its OpenAPI document is then `/admin/v1/openapi.json`.
    """
    app = FastAPI(
        title="Relaygate admin API",
        version=__version__,
        description="Tenants, environments, API keys, rate limits, budgets, JWT issuers,"
        " usage and the provider vault (whose routes also need an HMAC signature)."
        " Authenticate with `Authorization: Bearer <admin key>` (or `api-key`). An"
        " operator key (printed at first start) sees every tenant; a tenant's admin key sees only"
        " its own, and every other tenant's objects answer 404. Errors use OpenAI's envelope.",
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        servers=[{"url": "/admin/v1"}],
        exception_handlers={
            GatewayError: _gateway_error,
            RequestValidationError: _validation_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    app.state.context = context
    for module in (
        tenants,
        environments,
        keys,
        limits,
        budgets,
        issuers,
        events,
        usage,
        vault,
        webhooks,
        server,
    ):
        app.include_router(module.router, responses=_ERRORS)

    @app.get(REFERENCE_PATH, include_in_schema=False)
    async def reference(request: Request) -> HTMLResponse:
        """The browsable reference, rendered from the OpenAPI document (public, like it)."""
        page = render_reference(app.openapi(), request.scope.get("root_path", "") + OPENAPI_PATH)
        return HTMLResponse(page, headers={"content-security-policy": REFERENCE_CSP})

    app.add_middleware(AuditTrail, context=context)
    app.add_middleware(
        AdminGuard, context=context, public=frozenset({OPENAPI_PATH, REFERENCE_PATH})
    )
    return app
