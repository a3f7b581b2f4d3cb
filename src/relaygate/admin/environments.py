"""Environments: a tenant's deployment stages (production, staging, ...)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.deps import Caller, Ctx, conflict, not_found, plausible, tenant_row, writing
from relaygate.admin.schemas import EnvironmentCreate, EnvironmentOut, Listing
from relaygate.store.tables import ApiKey, Environment, JwtIssuerRecord

router = APIRouter(tags=["environments"])


def environment_out(row: Environment) -> EnvironmentOut:
    """The API view of an environment."""
    return EnvironmentOut(tenant_id=row.tenant_id, name=row.name, created_at=row.created_at)


@router.post("/tenants/{tenant_id}/environments", status_code=201, summary="Add an environment")
async def create_environment(
    tenant_id: str, body: EnvironmentCreate, ctx: Ctx, caller: Caller
) -> EnvironmentOut:
    duplicate = f"environment {body.name!r} already exists"
    async with writing(ctx, duplicate) as session:
        await tenant_row(session, caller, tenant_id)
        if await session.get(Environment, (tenant_id, body.name)) is not None:
            raise conflict(duplicate)
        row = Environment(tenant_id=tenant_id, name=body.name, created_at=datetime.now(UTC))
        session.add(row)
    return environment_out(row)


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
        return Listing[EnvironmentOut](data=[environment_out(r) for r in rows])


@router.delete(
    "/tenants/{tenant_id}/environments/{name}",
    status_code=204,
    summary="Delete an environment that no key and no JWT issuer uses",
)
async def delete_environment(tenant_id: str, name: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        row = await session.get(Environment, (tenant_id, name)) if plausible(name) else None
        if row is None:
            raise not_found("environment")
        for table, what in ((ApiKey, "keys"), (JwtIssuerRecord, "JWT issuers")):
            in_use = await session.execute(
                select(table.id).where(table.tenant_id == tenant_id, table.environment == name)
            )
            if in_use.first() is not None:
                raise conflict(f"environment {name!r} still has {what}; delete them first")
        await session.delete(row)
