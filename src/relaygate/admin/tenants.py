"""Tenants: a site, a team or an app, with its keys, policies and environments."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import delete, select

from relaygate.admin.checks import known_models
from relaygate.admin.deps import Caller, Ctx, conflict, operator_only, tenant_row, writing
from relaygate.admin.schemas import Listing, TenantCreate, TenantOut, TenantUpdate
from relaygate.store.tables import (
    ApiKey,
    BudgetPolicy,
    Environment,
    JwtIssuerRecord,
    LimitPolicy,
    Tenant,
)

router = APIRouter(tags=["tenants"])


def tenant_out(row: Tenant) -> TenantOut:
    """The API view of a tenant."""
    return TenantOut(
        id=row.id, name=row.name, allowed_models=row.allowed_models, created_at=row.created_at
    )


@router.post(
    "/tenants",
    status_code=201,
    summary="Create a tenant and its production environment (operator only)",
)
async def create_tenant(body: TenantCreate, ctx: Ctx, caller: Caller) -> TenantOut:
    operator_only(caller, "create tenants")
    models = known_models(ctx, body.allowed_models, "allowed_models")
    now = datetime.now(UTC)
    async with writing(ctx, f"tenant {body.id!r} already exists") as session:
        if await session.get(Tenant, body.id) is not None:
            raise conflict(f"tenant {body.id!r} already exists")
        row = Tenant(id=body.id, name=body.name or body.id, created_at=now, allowed_models=models)
        session.add(row)
        await session.flush()  # the tenant row first: environments refer to it
        session.add(Environment(tenant_id=body.id, name="production", created_at=now))
    return tenant_out(row)


@router.get("/tenants", summary="List the tenants the caller may see")
async def list_tenants(ctx: Ctx, caller: Caller) -> Listing[TenantOut]:
    query = select(Tenant).order_by(Tenant.id)
    if caller.tenant_id is not None:
        query = query.where(Tenant.id == caller.tenant_id)
    async with ctx.sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    return Listing[TenantOut](data=[tenant_out(r) for r in rows])


@router.get("/tenants/{tenant_id}", summary="Get a tenant")
async def get_tenant(tenant_id: str, ctx: Ctx, caller: Caller) -> TenantOut:
    async with ctx.sessions() as session:
        return tenant_out(await tenant_row(session, caller, tenant_id))


@router.patch(
    "/tenants/{tenant_id}",
    summary="Rename a tenant or change its model allowlist (the allowlist: operator only)",
)
async def update_tenant(tenant_id: str, body: TenantUpdate, ctx: Ctx, caller: Caller) -> TenantOut:
    fields = body.model_fields_set
    models = known_models(ctx, body.allowed_models, "allowed_models")
    async with writing(ctx) as session:
        row = await tenant_row(session, caller, tenant_id)
        if "allowed_models" in fields:
            operator_only(caller, "change a tenant's model allowlist")
            row.allowed_models = models
        if body.name is not None:
            row.name = body.name
    return tenant_out(row)


@router.delete(
    "/tenants/{tenant_id}",
    status_code=204,
    summary="Delete a tenant with its keys, limits, budgets, issuers and environments"
    " (operator only; usage records stay)",
)
async def delete_tenant(tenant_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)  # 404 before 403: existence stays private
        operator_only(caller, "delete tenants")
        for table in (LimitPolicy, BudgetPolicy, JwtIssuerRecord, ApiKey, Environment):
            await session.execute(delete(table).where(table.tenant_id == tenant_id))
        await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
