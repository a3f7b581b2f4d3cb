"""Tenants and their environments."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import delete, select

from relaygate.admin.deps import (
    Caller,
    Ctx,
    conflict,
    not_found,
    operator_only,
    tenant_row,
    writing,
)
from relaygate.admin.schemas import (
    EnvironmentCreate,
    EnvironmentOut,
    Listing,
    TenantCreate,
    TenantOut,
    TenantUpdate,
)
from relaygate.errors import bad_request
from relaygate.store.tables import (
    ApiKey,
    BudgetPolicy,
    Environment,
    JwtIssuerRecord,
    LimitPolicy,
    Tenant,
)

router = APIRouter(tags=["tenants"])


def check_models(ctx: Ctx, models: list[str] | None, param: str = "allowed_models") -> None:
    """Every name must be a model or route clients can use."""
    unknown = sorted(set(models or ()) - ctx.routes)
    if unknown:
        raise bad_request(f"unknown models: {', '.join(unknown)}", param=param)


def tenant_out(row: Tenant) -> TenantOut:
    return TenantOut(
        id=row.id, name=row.name, allowed_models=row.allowed_models, created_at=row.created_at
    )


@router.post("/tenants", status_code=201, summary="Create a tenant (operator only)")
async def create_tenant(body: TenantCreate, ctx: Ctx, caller: Caller) -> TenantOut:
    operator_only(caller)
    check_models(ctx, body.allowed_models)
    now = datetime.now(UTC)
    async with writing(ctx) as session:
        if await session.get(Tenant, body.id) is not None:
            raise conflict(f"tenant {body.id!r} already exists")
        row = Tenant(
            id=body.id,
            name=body.name or body.id,
            created_at=now,
            allowed_models=body.allowed_models,
        )
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


@router.patch("/tenants/{tenant_id}", summary="Rename a tenant or change its model allowlist")
async def update_tenant(tenant_id: str, body: TenantUpdate, ctx: Ctx, caller: Caller) -> TenantOut:
    check_models(ctx, body.allowed_models)
    async with writing(ctx) as session:
        row = await tenant_row(session, caller, tenant_id)
        fields = body.model_fields_set
        if "name" in fields and body.name:
            row.name = body.name
        if "allowed_models" in fields:
            row.allowed_models = body.allowed_models
    return tenant_out(row)


@router.delete(
    "/tenants/{tenant_id}",
    status_code=204,
    summary="Delete a tenant with its keys, limits, budgets, issuers and environments",
)
async def delete_tenant(tenant_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)  # 404 before 403: existence stays private
        operator_only(caller)
        for table in (ApiKey, LimitPolicy, BudgetPolicy, JwtIssuerRecord, Environment):
            await session.execute(delete(table).where(table.tenant_id == tenant_id))
        await session.execute(delete(Tenant).where(Tenant.id == tenant_id))


@router.post("/tenants/{tenant_id}/environments", status_code=201, summary="Add an environment")
async def create_environment(
    tenant_id: str, body: EnvironmentCreate, ctx: Ctx, caller: Caller
) -> EnvironmentOut:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        if await session.get(Environment, (tenant_id, body.name)) is not None:
            raise conflict(f"environment {body.name!r} already exists")
        row = Environment(tenant_id=tenant_id, name=body.name, created_at=datetime.now(UTC))
        session.add(row)
    return EnvironmentOut(tenant_id=tenant_id, name=row.name, created_at=row.created_at)


@router.get("/tenants/{tenant_id}/environments", summary="List a tenant's environments")
async def list_environments(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[EnvironmentOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(Environment)
                .where(Environment.tenant_id == tenant_id)
                .order_by(Environment.name)
            )
        ).scalars()
        data = [
            EnvironmentOut(tenant_id=tenant_id, name=r.name, created_at=r.created_at) for r in rows
        ]
    return Listing[EnvironmentOut](data=data)


@router.delete(
    "/tenants/{tenant_id}/environments/{name}",
    status_code=204,
    summary="Delete an environment no key uses",
)
async def delete_environment(tenant_id: str, name: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        row = await session.get(Environment, (tenant_id, name))
        if row is None:
            raise not_found("environment")
        in_use = await session.execute(
            select(ApiKey.id)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.environment == name)
            .limit(1)
        )
        if in_use.first() is not None:
            raise conflict(f"environment {name!r} still has keys")
        await session.delete(row)
