"""Request plumbing shared by the admin routers: the caller, the tenant scope, transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.context import AdminContext, AdminPrincipal
from relaygate.errors import GatewayError
from relaygate.store.tables import PolicyVersion, Tenant


def context(request: Request) -> AdminContext:
    """The live admin context (set by the gateway's lifespan)."""
    provider: Callable[[], AdminContext] = request.app.state.context
    return provider()


def not_found(what: str) -> GatewayError:
    """The 404 for anything missing or belonging to another tenant (they look the same)."""
    return GatewayError(404, f"{what} not found", code="not_found")


def conflict(message: str) -> GatewayError:
    """A 409 for a duplicate or an object still in use."""
    return GatewayError(409, message, code="conflict")


def _presented(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return request.headers.get("api-key") or None


def admin(request: Request, ctx: Annotated[AdminContext, Depends(context)]) -> AdminPrincipal:
    """The calling admin key, or the generic 401."""
    presented = _presented(request)
    principal = ctx.authenticate_admin(presented) if presented else None
    if principal is None:
        raise GatewayError(
            401,
            "invalid or missing credentials",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Ctx = Annotated[AdminContext, Depends(context)]
Caller = Annotated[AdminPrincipal, Depends(admin)]


def visible(caller: AdminPrincipal, tenant_id: str) -> bool:
    """Whether `caller` may see `tenant_id` at all."""
    return caller.tenant_id is None or caller.tenant_id == tenant_id


def operator_only(caller: AdminPrincipal) -> None:
    """Refuse tenant admins (403) for operator-only actions."""
    if caller.tenant_id is not None:
        raise GatewayError(403, "only the operator's admin key may do this", code="forbidden")


async def tenant_row(session: AsyncSession, caller: AdminPrincipal, tenant_id: str) -> Tenant:
    """The tenant, if it exists and the caller may see it; 404 otherwise."""
    tenant = await session.get(Tenant, tenant_id) if visible(caller, tenant_id) else None
    if tenant is None:
        raise not_found("tenant")
    return tenant


@asynccontextmanager
async def writing(ctx: AdminContext) -> AsyncIterator[AsyncSession]:
    """A transaction that bumps the policy version; the gateway reloads after it commits."""
    async with ctx.sessions.begin() as session:
        yield session
        await session.execute(
            update(PolicyVersion)
            .where(PolicyVersion.id == 1)
            .values(version=PolicyVersion.version + 1)
        )
    await ctx.reload_policy()
