"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from relaygate.state import Gateway, gateway


async def healthz(_request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Every configured dependency answers: the database, the keyring, the providers.

    Only a failed check makes this 503 (the data plane cannot serve). A degraded one (a shared
    backend unreachable, queued jobs that no worker takes) leaves it 200 with `"status":
    "degraded"`: taking every replica out of a load balancer would not bring a worker back
    (decision 0030)."""
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
    jobs = await _jobs(gw)
    if jobs is not None:
        checks["jobs"] = jobs["summary"]
    ready = not any(v.startswith("failed") for v in checks.values())
    degraded = any(v.startswith("degraded") for v in checks.values())
    status = "not ready" if not ready else "degraded" if degraded else "ready"
    body: dict[str, Any] = {"status": status, "checks": checks}
    if jobs is not None:
        body["jobs"] = jobs
    return JSONResponse(body, status_code=200 if ready else 503)


async def _jobs(gw: Gateway) -> dict[str, Any] | None:
    if gw.jobs is None:
        return None
    try:
        async with asyncio.timeout(2):
            health = await gw.jobs.health()
    except TimeoutError:
        return {"state": "degraded", "summary": "degraded: the jobs check timed out"}
    return {**health.as_json(), "summary": health.summary()}
