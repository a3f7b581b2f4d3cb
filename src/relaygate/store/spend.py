"""Spend already recorded in the usage ledger: the starting point of budget counters."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.budgets import Charge, SeedSource
from relaygate.store.tables import UsageRecord


def spend_seed(sessions: async_sessionmaker[AsyncSession]) -> SeedSource:
    """A seed function for the budget ledger: USD spent by the charge's subject in its period."""

    async def seed(charge: Charge) -> float:
        rule = charge.rule
        query = select(func.coalesce(func.sum(UsageRecord.cost_usd), 0.0)).where(
            UsageRecord.tenant_id == rule.tenant_id,
            UsageRecord.created_at >= charge.period_start,
            UsageRecord.created_at < charge.period_end,
        )
        if rule.scope == "key":
            query = query.where(UsageRecord.key_id == charge.subject_id)
        elif rule.scope == "user":
            query = query.where(UsageRecord.end_user == charge.subject_id)
        async with sessions() as session:
            return float((await session.execute(query)).scalar_one())

    return seed
