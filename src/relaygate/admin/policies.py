"""Rate limits and budgets of a tenant, its keys and its end users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.deps import Caller, Ctx, conflict, not_found, tenant_row, writing
from relaygate.admin.schemas import (
    BudgetCreate,
    BudgetOut,
    BudgetUpdate,
    LimitCreate,
    LimitOut,
    LimitUpdate,
    Listing,
)
from relaygate.admin.tenants import check_models
from relaygate.auth.keys import new_key_id
from relaygate.errors import bad_request
from relaygate.store.tables import ApiKey, BudgetPolicy, LimitPolicy

router = APIRouter(tags=["limits and budgets"])
R = TypeVar("R", LimitPolicy, BudgetPolicy)


async def _subject(session: AsyncSession, tenant_id: str, scope: str, subject: str | None) -> str:
    """The stored subject: the tenant id, a key id of this tenant, or an end-user id / '*'."""
    if scope == "tenant":
        if subject not in (None, tenant_id):
            raise bad_request("a tenant-scoped subject must be the tenant id", param="subject")
        return tenant_id
    if subject is None:
        raise bad_request(f"a {scope}-scoped entry needs a subject", param="subject")
    if scope == "key":
        key = await session.get(ApiKey, subject)
        if key is None or key.tenant_id != tenant_id:
            raise bad_request("subject is not a key of this tenant", param="subject")
    return subject


def limit_out(row: LimitPolicy) -> LimitOut:
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


def budget_out(row: BudgetPolicy) -> BudgetOut:
    return BudgetOut(
        id=row.id,
        tenant_id=row.tenant_id,
        scope=row.scope,
        subject=row.subject,
        period=row.period,
        limit_usd=row.limit_usd,
        hard=row.hard,
        downgrade_to=row.downgrade_to,
        alert=row.alert,
        created_at=row.created_at,
    )


async def _owned(session: AsyncSession, table: type[R], tenant_id: str, row_id: str) -> R:
    row = await session.get(table, row_id)
    if row is None or getattr(row, "tenant_id", None) != tenant_id:
        raise not_found(table.__name__.replace("Policy", "").lower())
    return row


@router.post("/tenants/{tenant_id}/limits", status_code=201, summary="Add a rate limit")
async def create_limit(tenant_id: str, body: LimitCreate, ctx: Ctx, caller: Caller) -> LimitOut:
    try:
        async with writing(ctx) as session:
            await tenant_row(session, caller, tenant_id)
            row = LimitPolicy(
                id=new_key_id(),
                tenant_id=tenant_id,
                scope=body.scope,
                subject=await _subject(session, tenant_id, body.scope, body.subject),
                rpm=body.rpm,
                tpm=body.tpm,
                concurrency=body.concurrency,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise conflict("this subject already has a limit; update it instead") from None
    return limit_out(row)


@router.get("/tenants/{tenant_id}/limits", summary="List a tenant's rate limits")
async def list_limits(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[LimitOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(LimitPolicy)
                .where(LimitPolicy.tenant_id == tenant_id)
                .order_by(LimitPolicy.created_at)
            )
        ).scalars()
        return Listing[LimitOut](data=[limit_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/limits/{limit_id}", summary="Get a rate limit")
async def get_limit(tenant_id: str, limit_id: str, ctx: Ctx, caller: Caller) -> LimitOut:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        return limit_out(await _owned(session, LimitPolicy, tenant_id, limit_id))


@router.patch("/tenants/{tenant_id}/limits/{limit_id}", summary="Change a rate limit")
async def update_limit(
    tenant_id: str, limit_id: str, body: LimitUpdate, ctx: Ctx, caller: Caller
) -> LimitOut:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        row = await _owned(session, LimitPolicy, tenant_id, limit_id)
        for name in body.model_fields_set:
            setattr(row, name, getattr(body, name))
        if row.rpm is None and row.tpm is None and row.concurrency is None:
            raise bad_request("set at least one of rpm, tpm, concurrency")
    return limit_out(row)


@router.delete("/tenants/{tenant_id}/limits/{limit_id}", status_code=204, summary="Remove a limit")
async def delete_limit(tenant_id: str, limit_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        await session.delete(await _owned(session, LimitPolicy, tenant_id, limit_id))


@router.post("/tenants/{tenant_id}/budgets", status_code=201, summary="Add a budget")
async def create_budget(tenant_id: str, body: BudgetCreate, ctx: Ctx, caller: Caller) -> BudgetOut:
    if body.downgrade_to is not None:
        check_models(ctx, [body.downgrade_to], "downgrade_to")
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        row = BudgetPolicy(
            id=new_key_id(),
            tenant_id=tenant_id,
            scope=body.scope,
            subject=await _subject(session, tenant_id, body.scope, body.subject),
            period=body.period,
            limit_usd=body.limit_usd,
            hard=body.hard,
            downgrade_to=body.downgrade_to,
            alert=body.alert,
            created_at=datetime.now(UTC),
        )
        session.add(row)
    return budget_out(row)


@router.get("/tenants/{tenant_id}/budgets", summary="List a tenant's budgets")
async def list_budgets(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[BudgetOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(BudgetPolicy)
                .where(BudgetPolicy.tenant_id == tenant_id)
                .order_by(BudgetPolicy.created_at)
            )
        ).scalars()
        return Listing[BudgetOut](data=[budget_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/budgets/{budget_id}", summary="Get a budget")
async def get_budget(tenant_id: str, budget_id: str, ctx: Ctx, caller: Caller) -> BudgetOut:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        return budget_out(await _owned(session, BudgetPolicy, tenant_id, budget_id))


@router.patch("/tenants/{tenant_id}/budgets/{budget_id}", summary="Change a budget")
async def update_budget(
    tenant_id: str, budget_id: str, body: BudgetUpdate, ctx: Ctx, caller: Caller
) -> BudgetOut:
    if body.downgrade_to is not None:
        check_models(ctx, [body.downgrade_to], "downgrade_to")
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        row = await _owned(session, BudgetPolicy, tenant_id, budget_id)
        for name in body.model_fields_set:
            value = getattr(body, name)
            if value is not None or name == "downgrade_to":
                setattr(row, name, value)
        if row.hard and row.downgrade_to:
            raise bad_request("downgrade_to applies to soft budgets only", param="downgrade_to")
    return budget_out(row)


@router.delete(
    "/tenants/{tenant_id}/budgets/{budget_id}", status_code=204, summary="Remove a budget"
)
async def delete_budget(tenant_id: str, budget_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        await session.delete(await _owned(session, BudgetPolicy, tenant_id, budget_id))
