"""Checks on request values that need the gateway's routes or the database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.context import AdminContext, AdminPrincipal
from relaygate.admin.deps import forbidden, plausible
from relaygate.errors import bad_request
from relaygate.store.tables import ApiKey, Environment


def known_models(ctx: AdminContext, models: list[str] | None, param: str) -> list[str] | None:
    """The names, without repeats, if every one is a model or route clients can use; else 400."""
    if models is None:
        return None
    unknown = sorted(set(models) - ctx.routes)
    if unknown:
        raise bad_request(f"{param}: unknown models: {', '.join(unknown)}", param=param)
    return list(dict.fromkeys(models))


async def existing_environment(session: AsyncSession, tenant_id: str, name: str) -> None:
    """400 unless the tenant has this environment."""
    if await session.get(Environment, (tenant_id, name)) is None:
        raise bad_request(f"environment {name!r} does not exist", param="environment")


async def subject_of(session: AsyncSession, tenant_id: str, scope: str, subject: str | None) -> str:
    """The stored subject of a limit or budget: the tenant id, a key id of this tenant (never
    another tenant's), or an end-user id / '*'."""
    if scope == "tenant":
        if subject not in (None, tenant_id):
            raise bad_request("a tenant-scoped subject must be the tenant id", param="subject")
        return tenant_id
    if subject is None:
        raise bad_request(f"a {scope}-scoped entry needs a subject", param="subject")
    if scope == "key":
        key = await session.get(ApiKey, subject) if plausible(subject) else None
        if key is None or key.tenant_id != tenant_id:
            raise bad_request("subject is not a key of this tenant", param="subject")
    return subject


def may_set_scope(caller: AdminPrincipal, scope: str) -> None:
    """Tenant-wide limits and budgets are the operator's ceiling: a tenant admin may read them,
    and may add limits and budgets for its keys and end users, but not change the ceiling."""
    if scope == "tenant" and caller.tenant_id is not None:
        raise forbidden("only the operator's admin key may change tenant-wide limits and budgets")
