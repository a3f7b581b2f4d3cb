"""The usage ledger and budget events, filtered and grouped, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.deps import Caller, Ctx, not_found, tenant_row, visible
from relaygate.admin.schemas import EventOut, Listing
from relaygate.errors import bad_request
from relaygate.store.tables import BudgetEvent, UsageRecord

router = APIRouter(tags=["usage"])

GROUPS: dict[str, Any] = {
    "tenant": UsageRecord.tenant_id,
    "environment": UsageRecord.environment,
    "key": UsageRecord.key_id,
    "user": UsageRecord.end_user,
    "model": UsageRecord.model,
    "route": UsageRecord.route,
    "provider": UsageRecord.provider,
}
RECORD_FIELDS = [
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
]


def _moment(value: str | None, param: str, end: bool) -> datetime | None:
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{param} must be an ISO 8601 date or date-time", param=param) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", UsageRecord.created_at)


def _filtered(query: Select[Any], filters: dict[str, Any]) -> Select[Any]:
    columns = {
        "tenant": UsageRecord.tenant_id,
        "key": UsageRecord.key_id,
        "user": UsageRecord.end_user,
        "model": UsageRecord.model,
        "route": UsageRecord.route,
    }
    for name, column in columns.items():
        if filters.get(name):
            query = query.where(column == filters[name])
    if filters.get("since"):
        query = query.where(UsageRecord.created_at >= filters["since"])
    if filters.get("until"):
        query = query.where(UsageRecord.created_at <= filters["until"])
    return query


def _render(rows: list[dict[str, Any]], fields: list[str], as_csv: bool) -> Response:
    if not as_csv:
        return JSONResponse({"object": "list", "data": rows}, media_type="application/json")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


@router.get(
    "/usage",
    summary="Usage records, filtered, or grouped with totals; JSON or CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
async def usage(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    tenant: str | None = None,
    key: str | None = None,
    user: str | None = None,
    model: str | None = None,
    route: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601 date or date-time")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 date or date-time")] = None,
    group_by: Annotated[
        str | None,
        Query(
            description="comma list of: tenant, environment, key, user, model, route, provider, day"
        ),
    ] = None,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    before: Annotated[int | None, Query(ge=1, description="records with an id below this")] = None,
) -> Response:
    if caller.tenant_id is not None:
        if tenant is not None and not visible(caller, tenant):
            raise not_found("tenant")
        tenant = caller.tenant_id
    filters = {
        "tenant": tenant,
        "key": key,
        "user": user,
        "model": model,
        "route": route,
        "since": _moment(since, "since", end=False),
        "until": _moment(until, "until", end=True),
    }
    groups = [g.strip() for g in (group_by or "").split(",") if g.strip()]
    unknown = sorted(set(groups) - {*GROUPS, "day"})
    if unknown:
        raise bad_request(f"cannot group by: {', '.join(unknown)}", param="group_by")
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    await ctx.flush_usage()
    async with ctx.sessions() as session:
        if not groups:
            query = _filtered(select(UsageRecord), filters).order_by(UsageRecord.id.desc())
            if before is not None:
                query = query.where(UsageRecord.id < before)
            records = (await session.execute(query.limit(limit))).scalars().all()
            rows = [{f: _plain(getattr(r, f)) for f in RECORD_FIELDS} for r in records]
            return _render(rows, RECORD_FIELDS, as_csv)
        columns = [(_day(session) if g == "day" else GROUPS[g]).label(g) for g in groups]
        totals = [
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageRecord.cached_tokens), 0).label("cached_tokens"),
            func.coalesce(func.sum(UsageRecord.cost_usd), 0.0).label("cost_usd"),
            func.count().filter(UsageRecord.status >= 400).label("errors"),
        ]
        query = _filtered(select(*columns, *totals), filters).group_by(*columns).order_by(*columns)
        result = (await session.execute(query.limit(limit))).mappings().all()
    fields = [
        *groups,
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_usd",
        "errors",
    ]
    rows = [{f: _plain(row[f]) for f in fields} for row in result]
    for row in rows:
        row["cost_usd"] = float(row["cost_usd"])
    return _render(rows, fields, as_csv)


@router.get("/tenants/{tenant_id}/events", summary="Budget alerts, newest first")
async def events(
    tenant_id: str,
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Listing[EventOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(BudgetEvent)
                .where(BudgetEvent.tenant_id == tenant_id)
                .order_by(BudgetEvent.id.desc())
                .limit(limit)
            )
        ).scalars()
        data = [
            EventOut(
                id=r.id,
                tenant_id=r.tenant_id,
                budget_id=r.budget_id,
                subject_id=r.subject_id,
                period_key=r.period_key,
                kind=r.kind,
                spent_usd=r.spent_usd,
                limit_usd=r.limit_usd,
                created_at=r.created_at,
            )
            for r in rows
        ]
    return Listing[EventOut](data=data)
