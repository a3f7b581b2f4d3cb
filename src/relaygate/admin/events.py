"""Budget events of a tenant: soft caps crossed, hard caps reached, requests downgraded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from relaygate.admin.deps import Caller, Ctx, tenant_row
from relaygate.admin.schemas import INT64_MAX, EventOut, Listing
from relaygate.store.tables import BudgetEvent

router = APIRouter(tags=["events"])


def event_out(row: BudgetEvent) -> EventOut:
    """The API view of a budget event."""
    return EventOut(
        id=row.id,
        tenant_id=row.tenant_id,
        budget_id=row.budget_id,
        subject_id=row.subject_id,
        period_key=row.period_key,
        kind=row.kind,
        spent_usd=row.spent_usd,
        limit_usd=row.limit_usd,
        created_at=row.created_at,
    )


@router.get("/tenants/{tenant_id}/events", summary="A tenant's budget events, newest first")
async def list_events(
    tenant_id: str,
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="events with an id below this")
    ] = None,
) -> Listing[EventOut]:
    query = select(BudgetEvent).where(BudgetEvent.tenant_id == tenant_id)
    if before is not None:
        query = query.where(BudgetEvent.id < before)
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (await session.execute(query.order_by(BudgetEvent.id.desc()).limit(limit))).scalars()
        return Listing[EventOut](data=[event_out(r) for r in rows])
