"""The usage ledger, filtered, or grouped with totals; as JSON or CSV."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from relaygate.admin.deps import Caller, Ctx, not_found, visible
from relaygate.admin.schemas import INT64_MAX, UsageGroups, UsageRecords
from relaygate.errors import bad_request
from relaygate.store.usage_report import (
    GROUP_COLUMNS,
    RECORD_FIELDS,
    TOTALS,
    UsageFilter,
    record_row,
    usage_records,
    usage_totals,
)

log = logging.getLogger("relaygate.admin")
router = APIRouter(tags=["usage"])

# A cell starting with one of these is a formula to a spreadsheet (CSV injection); end-user ids
# come from API callers, so such cells get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NO_NUL = r"^[^\x00]*$"
# The shape of every request id the gateway records (api.middleware.REQUEST_ID).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
LOOKUP_LIMIT = 100  # records of one request id (a client may reuse its own ids)
Moment = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=_NO_NUL,
        description="ISO 8601 date (a whole UTC day) or date-time (UTC unless it has an offset)",
    ),
]


def _filter(description: str | None = None) -> Any:
    """An equality filter on one column."""
    return Query(max_length=256, pattern=_NO_NUL, description=description)


def _moment(value: str | None, param: str, end: bool) -> datetime | None:
    """A UTC time; a date means its start (`since`) or its last microsecond (`until`)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{param} must be an ISO 8601 date or date-time", param=param) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _groups(group_by: str | None) -> list[str]:
    groups = list(dict.fromkeys(g.strip() for g in (group_by or "").split(",") if g.strip()))
    unknown = [g for g in groups if g not in GROUP_COLUMNS]
    if unknown:
        raise bad_request(
            f"cannot group by {', '.join(unknown)}; use: {', '.join(GROUP_COLUMNS)}",
            param="group_by",
        )
    return groups


def _cell(value: Any) -> Any:
    if isinstance(value, float):  # fixed-point: 0.00000135, never 1.35e-06
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], fields: list[str]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(fields)
    writer.writerows([_cell(row.get(f)) for f in fields] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


def _json(body: UsageRecords | UsageGroups) -> Response:
    return Response(body.model_dump_json(exclude_unset=True), media_type="application/json")


async def _flush(flush: Any) -> None:
    try:
        await flush()
    except Exception as exc:
        # The answer then misses only the requests still queued; the ledger keeps them.
        log.warning("usage flush before a usage query failed: %s", type(exc).__name__)


@router.get(
    "/usage",
    summary="Usage records (newest first), or totals per group; JSON or CSV",
    response_model=UsageRecords | UsageGroups,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def usage(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    tenant: Annotated[str | None, _filter("a tenant id (a tenant admin: only its own)")] = None,
    environment: Annotated[str | None, _filter()] = None,
    key: Annotated[str | None, _filter("a key id")] = None,
    user: Annotated[str | None, _filter("an end-user id")] = None,
    model: Annotated[str | None, _filter("the model a provider answered with")] = None,
    route: Annotated[str | None, _filter("the route (model name) clients asked for")] = None,
    provider: Annotated[str | None, _filter()] = None,
    request_id: Annotated[
        str | None, _filter("a request id (the `x-request-id` of the answer)")
    ] = None,
    since: Moment = None,
    until: Moment = None,
    group_by: Annotated[
        str | None,
        Query(
            max_length=200,
            description="comma list of: tenant, environment, key, user, model, route, provider,"
            " day (UTC)",
        ),
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="json (default) or csv; `Accept: text/csv` also selects CSV"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    before: Annotated[
        int | None,
        Query(
            ge=1,
            le=INT64_MAX,
            description="records only: ids below this (the previous page's next_before)",
        ),
    ] = None,
) -> Response:
    if caller.tenant_id is not None:
        if tenant is not None and not visible(caller, tenant):
            raise not_found("tenant")
        tenant = caller.tenant_id
    where = UsageFilter(
        tenant=tenant,
        environment=environment,
        key=key,
        user=user,
        model=model,
        route=route,
        provider=provider,
        request_id=request_id,
        since=_moment(since, "since", end=False),
        until=_moment(until, "until", end=True),
    )
    groups = _groups(group_by)
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    await _flush(ctx.flush_usage)
    async with ctx.sessions() as session:
        if groups:
            totals = await usage_totals(session, where, groups, limit)
        else:
            records = await usage_records(session, where, limit + 1, before)
    if groups:
        if as_csv:
            return _csv(totals, [*groups, *TOTALS])
        return _json(UsageGroups.model_validate({"object": "list", "data": totals}))
    page, has_more = records[:limit], len(records) > limit
    rows = [record_row(r) for r in page]
    if as_csv:
        return _csv(rows, list(RECORD_FIELDS))
    next_before = page[-1].id if has_more and page else None
    return _json(
        UsageRecords.model_validate(
            {"object": "list", "data": rows, "has_more": has_more, "next_before": next_before}
        )
    )


@router.get(
    "/usage/requests/{request_id}",
    summary="What happened to one request: its usage records, newest first",
    response_model=UsageRecords,
)
async def usage_of_request(
    ctx: Ctx,
    caller: Caller,
    request_id: Annotated[
        str, Path(max_length=256, description="the `x-request-id` the gateway answered with")
    ],
) -> Response:
    """The records of `request_id` the caller may see (a tenant admin: its own tenant's);
    404 when there are none, exactly as for another tenant's request."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise not_found("request")
    where = UsageFilter(tenant=caller.tenant_id, request_id=request_id)
    await _flush(ctx.flush_usage)
    async with ctx.sessions() as session:
        records = await usage_records(session, where, LOOKUP_LIMIT + 1)
    if not records:
        raise not_found("request")
    page = records[:LOOKUP_LIMIT]
    return _json(
        UsageRecords.model_validate(
            {
                "object": "list",
                "data": [record_row(r) for r in page],
                "has_more": len(records) > LOOKUP_LIMIT,
                "next_before": None,
            }
        )
    )
