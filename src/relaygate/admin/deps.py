"""Request plumbing shared by the admin routers: the caller, the tenant scope, transactions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.context import AdminContext, AdminPrincipal
from relaygate.admin.guard import PRINCIPAL_STATE
from relaygate.auth.credentials import unauthorized
from relaygate.errors import GatewayError
from relaygate.store.snapshot import bump_policy_version
from relaygate.store.tables import BudgetPolicy, JwtIssuerRecord, LimitPolicy, Tenant

# Every id this API hands out (tenant ids, environment names, generated ids) has this shape;
# anything else is answered 404 without a query.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

R = TypeVar("R", LimitPolicy, BudgetPolicy, JwtIssuerRecord)

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <admin key>`")
_api_key = APIKeyHeader(name="api-key", auto_error=False, description="`api-key: <admin key>`")


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


def forbidden(message: str) -> GatewayError:
    """A 403 for something only the operator's admin key may do."""
    return GatewayError(403, message, code="forbidden")


def admin(
    request: Request,
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _header_key: Annotated[str | None, Security(_api_key)],
) -> AdminPrincipal:
    """The calling admin key, authenticated by `AdminGuard` before routing (declared here so the
    OpenAPI document lists both ways to present it)."""
    principal = getattr(request.state, PRINCIPAL_STATE, None)
    if not isinstance(principal, AdminPrincipal):
        raise unauthorized()
    return principal


Ctx = Annotated[AdminContext, Depends(context)]
Caller = Annotated[AdminPrincipal, Depends(admin)]


def plausible(identifier: str) -> bool:
    """Whether `identifier` could name something this API created."""
    return _PLAUSIBLE_ID.fullmatch(identifier) is not None


def visible(caller: AdminPrincipal, tenant_id: str) -> bool:
    """Whether `caller` may see `tenant_id` at all."""
    return caller.tenant_id is None or caller.tenant_id == tenant_id


def operator_only(caller: AdminPrincipal, action: str) -> None:
    """Refuse tenant admins (403) for operator-only actions."""
    if caller.tenant_id is not None:
        raise forbidden(f"only the operator's admin key may {action}")


async def tenant_row(session: AsyncSession, caller: AdminPrincipal, tenant_id: str) -> Tenant:
    """The tenant, if it exists and the caller may see it; 404 otherwise."""
    tenant = None
    if visible(caller, tenant_id) and plausible(tenant_id):
        tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise not_found("tenant")
    return tenant


async def owned(
    session: AsyncSession,
    caller: AdminPrincipal,
    tenant_id: str,
    table: type[R],
    row_id: str,
    what: str,
) -> R:
    """A limit, budget or issuer of a tenant the caller may see; 404 otherwise (also when the id
    belongs to another tenant)."""
    await tenant_row(session, caller, tenant_id)
    row = await session.get(table, row_id) if plausible(row_id) else None
    if row is None or row.tenant_id != tenant_id:
        raise not_found(what)
    return row


@asynccontextmanager
async def writing(
    ctx: AdminContext, duplicate: str = "this conflicts with an existing object"
) -> AsyncIterator[AsyncSession]:
    """One transaction that also bumps the policy version; after it commits, the gateway reloads.

    A uniqueness or reference violation (e.g. two admins creating the same thing at once) rolls
    everything back and answers 409 with `duplicate`.
    """
    try:
        async with ctx.sessions.begin() as session:
            yield session
            await bump_policy_version(session)
    except IntegrityError:
        raise conflict(duplicate) from None
    await ctx.reload_policy()
