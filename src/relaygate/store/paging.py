"""Newest-first pages of a tenant's rows with an `after` cursor (OpenAI's list style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.errors import GatewayError

T = TypeVar("T")


async def newest_first(
    session: AsyncSession,
    table: type[T],
    query: Select[Any],
    tenant_id: str,
    after: str | None,
    limit: int,
) -> Sequence[T]:
    """Rows of `query` (already filtered to the tenant) ordered by creation time then id,
    newest first, starting after the row `after` (a 400 if that is not the tenant's row)."""
    model: Any = table
    if after is not None:
        cursor: Any = await session.get(table, after)
        if cursor is None or cursor.tenant_id != tenant_id:
            raise GatewayError(400, "unknown cursor in 'after'", param="after")
        query = query.where(
            or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        )
    rows = await session.scalars(
        query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
    )
    return rows.all()
