"""The policy version: one counter every replica polls; a change makes them reload the policy."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import PolicyVersion


async def policy_version(sessions: async_sessionmaker[AsyncSession]) -> int:
    """The current policy version (bumped by every admin write)."""
    async with sessions() as session:
        row = await session.get(PolicyVersion, 1)
    return row.version if row is not None else 0


async def bump_policy_version(session: AsyncSession) -> None:
    """Make every replica reload its policy (call inside the transaction of the change)."""
    await session.execute(
        update(PolicyVersion).where(PolicyVersion.id == 1).values(version=PolicyVersion.version + 1)
    )
