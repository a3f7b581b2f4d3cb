"""Rate limits (requests and tokens per minute, concurrency) of a tenant, its keys, its users."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.checks import may_set_scope, subject_of
from relaygate.admin.deps import Caller, Ctx, conflict, owned, tenant_row, writing
from relaygate.admin.schemas import LimitCreate, LimitOut, LimitUpdate, Listing
from relaygate.auth.keys import new_key_id
from relaygate.errors import bad_request
from relaygate.store.tables import LimitPolicy

router = APIRouter(tags=["limits"])
DUPLICATE = "this subject already has a limit; change that one instead"


def limit_out(row: LimitPolicy) -> LimitOut:
    """The API view of a limit."""
    return LimitOut(
        id=row.id,
        tenant_id=row.tenant_id,
        scope=row.scope,
        subject=row.subject,
        rpm=row.rpm,
        tpm=row.tpm,
        concurrency=row.concurrency,
        created_at=row.created_at,
    )


@router.post(
    "/tenants/{tenant_id}/limits",
    status_code=201,
    summary="Add a rate limit for the tenant, one of its keys, or its end users",
)
async def create_limit(tenant_id: str, body: LimitCreate, ctx: Ctx, caller: Caller) -> LimitOut:
    async with writing(ctx, DUPLICATE) as session:
        await tenant_row(session, caller, tenant_id)
        may_set_scope(caller, body.scope)
        subject = await subject_of(session, tenant_id, body.scope, body.subject)
        taken = await session.execute(
            select(LimitPolicy.id).where(
                LimitPolicy.tenant_id == tenant_id,
                LimitPolicy.scope == body.scope,
                LimitPolicy.subject == subject,
            )
        )
        if taken.first() is not None:
            raise conflict(DUPLICATE)
        row = LimitPolicy(
            id=new_key_id(),
            tenant_id=tenant_id,
            scope=body.scope,
            subject=subject,
            rpm=body.rpm,
            tpm=body.tpm,
            concurrency=body.concurrency,
            created_at=datetime.now(UTC),
        )
        session.add(row)
    return limit_out(row)


@router.get("/tenants/{tenant_id}/limits", summary="List a tenant's rate limits")
async def list_limits(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[LimitOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(LimitPolicy)
                .where(LimitPolicy.tenant_id == tenant_id)
                .order_by(LimitPolicy.created_at, LimitPolicy.id)
            )
        ).scalars()
        return Listing[LimitOut](data=[limit_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/limits/{limit_id}", summary="Get a rate limit")
async def get_limit(tenant_id: str, limit_id: str, ctx: Ctx, caller: Caller) -> LimitOut:
    async with ctx.sessions() as session:
        return limit_out(await owned(session, caller, tenant_id, LimitPolicy, limit_id, "limit"))


@router.patch("/tenants/{tenant_id}/limits/{limit_id}", summary="Change a rate limit")
async def update_limit(
    tenant_id: str, limit_id: str, body: LimitUpdate, ctx: Ctx, caller: Caller
) -> LimitOut:
    async with writing(ctx) as session:
        row = await owned(session, caller, tenant_id, LimitPolicy, limit_id, "limit")
        may_set_scope(caller, row.scope)
        for name in ("rpm", "tpm", "concurrency"):
            if name in body.model_fields_set:
                setattr(row, name, getattr(body, name))
        if row.rpm is None and row.tpm is None and row.concurrency is None:
            raise bad_request("set at least one of rpm, tpm, concurrency (or delete the limit)")
    return limit_out(row)


@router.delete(
    "/tenants/{tenant_id}/limits/{limit_id}", status_code=204, summary="Remove a rate limit"
)
async def delete_limit(tenant_id: str, limit_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        row = await owned(session, caller, tenant_id, LimitPolicy, limit_id, "limit")
        may_set_scope(caller, row.scope)
        await session.delete(row)
