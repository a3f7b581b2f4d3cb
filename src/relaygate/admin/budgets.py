"""Budgets: spend caps in USD per UTC day or month for a tenant, its keys or its end users."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.checks import known_models, may_set_scope, subject_of
from relaygate.admin.context import AdminContext
from relaygate.admin.deps import Caller, Ctx, owned, tenant_row, writing
from relaygate.admin.schemas import BudgetCreate, BudgetOut, BudgetUpdate, Listing
from relaygate.auth.keys import new_key_id
from relaygate.errors import bad_request
from relaygate.store.tables import BudgetPolicy

router = APIRouter(tags=["budgets"])


def budget_out(row: BudgetPolicy) -> BudgetOut:
    """The API view of a budget."""
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
        pace=row.pace,
        created_at=row.created_at,
    )


def _known_route(ctx: AdminContext, downgrade_to: str | None) -> str | None:
    if downgrade_to is not None:
        known_models(ctx, [downgrade_to], "downgrade_to")
    return downgrade_to


def _soft_only(hard: bool, downgrade_to: str | None) -> None:
    if hard and downgrade_to is not None:
        raise bad_request(
            "downgrade_to applies to soft budgets (hard: false) only", param="downgrade_to"
        )


@router.post(
    "/tenants/{tenant_id}/budgets",
    status_code=201,
    summary="Add a budget for the tenant, one of its keys, or its end users",
)
async def create_budget(tenant_id: str, body: BudgetCreate, ctx: Ctx, caller: Caller) -> BudgetOut:
    _soft_only(body.hard, body.downgrade_to)
    downgrade_to = _known_route(ctx, body.downgrade_to)
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        may_set_scope(caller, body.scope)
        row = BudgetPolicy(
            id=new_key_id(),
            tenant_id=tenant_id,
            scope=body.scope,
            subject=await subject_of(session, tenant_id, body.scope, body.subject),
            period=body.period,
            limit_usd=body.limit_usd,
            hard=body.hard,
            downgrade_to=downgrade_to,
            alert=body.alert,
            pace=body.pace,
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
                .order_by(BudgetPolicy.created_at, BudgetPolicy.id)
            )
        ).scalars()
        return Listing[BudgetOut](data=[budget_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/budgets/{budget_id}", summary="Get a budget")
async def get_budget(tenant_id: str, budget_id: str, ctx: Ctx, caller: Caller) -> BudgetOut:
    async with ctx.sessions() as session:
        return budget_out(
            await owned(session, caller, tenant_id, BudgetPolicy, budget_id, "budget")
        )


@router.patch("/tenants/{tenant_id}/budgets/{budget_id}", summary="Change a budget")
async def update_budget(
    tenant_id: str, budget_id: str, body: BudgetUpdate, ctx: Ctx, caller: Caller
) -> BudgetOut:
    fields = body.model_fields_set
    async with writing(ctx) as session:
        row = await owned(session, caller, tenant_id, BudgetPolicy, budget_id, "budget")
        may_set_scope(caller, row.scope)
        if body.limit_usd is not None:
            row.limit_usd = body.limit_usd
        if body.hard is not None:
            row.hard = body.hard
        if body.alert is not None:
            row.alert = body.alert
        if body.pace is not None:
            row.pace = body.pace
        if "downgrade_to" in fields:
            row.downgrade_to = _known_route(ctx, body.downgrade_to)
        _soft_only(row.hard, row.downgrade_to)
    return budget_out(row)


@router.delete(
    "/tenants/{tenant_id}/budgets/{budget_id}", status_code=204, summary="Remove a budget"
)
async def delete_budget(tenant_id: str, budget_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        row = await owned(session, caller, tenant_id, BudgetPolicy, budget_id, "budget")
        may_set_scope(caller, row.scope)
        await session.delete(row)
