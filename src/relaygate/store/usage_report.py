"""Reading the usage ledger: filtered records, newest first, or totals per group.

Works the same on SQLite and PostgreSQL; the only dialect-specific part is the UTC day of a
record. Times passed in must be UTC (SQLite compares stored UTC wall times as text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.store.tables import UsageRecord

GROUP_COLUMNS: dict[str, Any] = {
    "tenant": UsageRecord.tenant_id,
    "environment": UsageRecord.environment,
    "key": UsageRecord.key_id,
    "user": UsageRecord.end_user,
    "model": UsageRecord.model,
    "route": UsageRecord.route,
    "provider": UsageRecord.provider,
    "day": None,  # dialect-specific, see _day
}
# Costs are reported to this many decimal places (1e-10 USD): well below any price per token,
# and it drops the binary noise of float arithmetic (0.0006299999999999996 -> 0.00063).
COST_DIGITS = 10
TOTALS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors")
RECORD_FIELDS = (
    "id",
    "request_id",
    "created_at",
    "tenant_id",
    "environment",
    "key_id",
    "end_user",
    "endpoint",
    "route",
    "provider",
    "model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "outcome",
)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which records count: equality on each given column, `since <= created_at <= until`."""

    tenant: str | None = None
    environment: str | None = None
    key: str | None = None
    user: str | None = None
    model: str | None = None
    route: str | None = None
    provider: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        """`query` restricted to the matching records."""
        for name, column in GROUP_COLUMNS.items():
            value = getattr(self, name, None) if column is not None else None
            if value is not None:
                query = query.where(column == value)
        if self.request_id is not None:  # indexed (ix_usage_records_request_id)
            query = query.where(UsageRecord.request_id == self.request_id)
        if self.since is not None:
            query = query.where(UsageRecord.created_at >= self.since)
        if self.until is not None:
            query = query.where(UsageRecord.created_at <= self.until)
        return query


def cost(usd: float | None) -> float:
    """A cost or a sum of costs as reported: rounded to COST_DIGITS."""
    return round(float(usd or 0.0), COST_DIGITS)


def record_row(record: UsageRecord) -> dict[str, Any]:
    """A record's RECORD_FIELDS as reported (the cost rounded)."""
    row = {name: getattr(record, name) for name in RECORD_FIELDS}
    row["cost_usd"] = cost(record.cost_usd)
    return row


def _day(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", UsageRecord.created_at)


async def usage_records(
    session: AsyncSession, where: UsageFilter, limit: int, before: int | None = None
) -> list[UsageRecord]:
    """Up to `limit` matching records, newest (highest id) first, with an id below `before`."""
    query = where.apply(select(UsageRecord)).order_by(UsageRecord.id.desc())
    if before is not None:
        query = query.where(UsageRecord.id < before)
    return list((await session.execute(query.limit(limit))).scalars())


async def usage_totals(
    session: AsyncSession, where: UsageFilter, groups: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """Totals (TOTALS) per distinct combination of `groups` (names of GROUP_COLUMNS)."""
    columns = [
        (_day(session) if name == "day" else GROUP_COLUMNS[name]).label(name) for name in groups
    ]
    totals = [
        func.count().label("requests"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(UsageRecord.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(UsageRecord.cost_usd), 0.0).label("cost_usd"),
        func.count().filter(UsageRecord.status >= 400).label("errors"),
    ]
    query = (
        where.apply(select(*columns, *totals))
        .group_by(*columns)
        .order_by(*(c.asc().nulls_first() for c in columns))
        .limit(limit)
    )
    rows = (await session.execute(query)).mappings().all()
    return [
        {
            **{name: row[name] for name in groups},
            **{name: cost(row[name]) if name == "cost_usd" else int(row[name]) for name in TOTALS},
        }
        for row in rows
    ]
