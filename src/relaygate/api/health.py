"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from relaygate.state import gateway


async def healthz(_request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Every configured dependency answers: the database, the keyring, the providers."""
    gw = gateway(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with gw.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    checks["keys"] = "ok" if gw.policy.keys_by_hash else "failed: no active keys"
    for name, backend in (("limits", gw.limiter), ("budgets", gw.ledger), ("replay", gw.replay)):
        healthy = getattr(backend, "healthy", True)
        # A degraded shared backend still serves (per replica), so it does not fail readiness.
        checks[name] = "ok" if healthy else "degraded: shared backend unreachable"
    checks["providers"] = f"ok ({len(gw.providers)} configured)"
    ready = not any(v.startswith("failed") for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
