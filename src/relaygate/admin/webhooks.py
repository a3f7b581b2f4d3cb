"""Webhook endpoints (register, rotate secrets, disable), their messages and delivery log,
manual redelivery, and re-enqueueing failed jobs."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.deps import Caller, Ctx, not_found, plausible, tenant_row
from relaygate.admin.schemas import (
    AttemptOut,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    EndpointRotate,
    Listing,
    MessageOut,
)
from relaygate.jobs.model import view
from relaygate.jobs.store import JobStore
from relaygate.store.tables import WebhookAttempt, WebhookEndpoint, WebhookMessage
from relaygate.webhooks.endpoints import EndpointStore

router = APIRouter(tags=["webhooks"])


def endpoint_out(row: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
    """The API view of an endpoint (with its new secret, right after creation or rotation)."""
    out = EndpointOut.model_validate(row, from_attributes=True)
    return out.model_copy(update={"secret": secret}) if secret is not None else out


async def _endpoint(ctx: Ctx, caller: Caller, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    row = None
    if plausible(endpoint_id):
        row = await EndpointStore(ctx.sessions, ctx.sealer).get(endpoint_id, tenant_id)
    if row is None:
        raise not_found("webhook endpoint")
    return row


@router.post(
    "/tenants/{tenant_id}/webhook-endpoints",
    status_code=201,
    summary="Register a webhook endpoint (its signing secret is shown once)",
)
async def create_endpoint(
    tenant_id: str, body: EndpointCreate, ctx: Ctx, caller: Caller
) -> EndpointOut:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    row, secret = await EndpointStore(ctx.sessions, ctx.sealer).create(
        tenant_id, body.url, body.description, body.allow_private
    )
    return endpoint_out(row, secret)


@router.get("/tenants/{tenant_id}/webhook-endpoints", summary="List a tenant's endpoints")
async def list_endpoints(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[EndpointOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    rows = await EndpointStore(ctx.sessions, ctx.sealer).list(tenant_id)
    return Listing[EndpointOut](data=[endpoint_out(r) for r in rows])


@router.post(
    "/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}/rotate",
    summary="New signing secret; the previous ones sign too until the overlap ends",
)
async def rotate_endpoint(
    tenant_id: str, endpoint_id: str, body: EndpointRotate, ctx: Ctx, caller: Caller
) -> EndpointOut:
    row = await _endpoint(ctx, caller, tenant_id, endpoint_id)
    secret = await EndpointStore(ctx.sessions, ctx.sealer).rotate(row, body.overlap_s)
    return endpoint_out(row, secret)


@router.patch("/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}", summary="Enable or disable")
async def patch_endpoint(
    tenant_id: str, endpoint_id: str, body: EndpointPatch, ctx: Ctx, caller: Caller
) -> EndpointOut:
    row = await _endpoint(ctx, caller, tenant_id, endpoint_id)
    store = EndpointStore(ctx.sessions, ctx.sealer)
    await store.set_enabled(row, body.enabled, None if body.enabled else "disabled by an admin")
    fresh = await store.get(endpoint_id, tenant_id)
    assert fresh is not None
    return endpoint_out(fresh)


@router.get(
    "/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}/messages",
    summary="Messages sent (or being sent) to an endpoint, newest first",
)
async def list_messages(
    tenant_id: str,
    endpoint_id: str,
    ctx: Ctx,
    caller: Caller,
    status: str | None = None,
    limit: int = 50,
) -> Listing[MessageOut]:
    await _endpoint(ctx, caller, tenant_id, endpoint_id)
    query = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookMessage.status == status)
    async with ctx.sessions() as session:
        rows = await session.scalars(
            query.order_by(WebhookMessage.created_at.desc()).limit(max(1, min(limit, 500)))
        )
        return Listing[MessageOut](
            data=[MessageOut.model_validate(r, from_attributes=True) for r in rows]
        )


async def _message(ctx: Ctx, caller: Caller, tenant_id: str, message_id: str) -> WebhookMessage:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        row = await session.get(WebhookMessage, message_id) if plausible(message_id) else None
    if row is None or row.tenant_id != tenant_id:
        raise not_found("webhook message")
    return row


@router.get(
    "/tenants/{tenant_id}/webhook-messages/{message_id}/attempts",
    summary="The delivery log of a message",
)
async def list_attempts(
    tenant_id: str, message_id: str, ctx: Ctx, caller: Caller
) -> Listing[AttemptOut]:
    await _message(ctx, caller, tenant_id, message_id)
    async with ctx.sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id == message_id)
            .order_by(WebhookAttempt.attempt)
        )
        return Listing[AttemptOut](
            data=[AttemptOut.model_validate(r, from_attributes=True) for r in rows]
        )


@router.post(
    "/tenants/{tenant_id}/webhook-messages/{message_id}/redeliver",
    summary="Send a message again now (same message id)",
)
async def redeliver(tenant_id: str, message_id: str, ctx: Ctx, caller: Caller) -> MessageOut:
    await _message(ctx, caller, tenant_id, message_id)
    if ctx.outbox is None:
        raise not_found("webhook outbox")
    await ctx.outbox.redeliver(message_id, tenant_id)
    return MessageOut.model_validate(
        await _message(ctx, caller, tenant_id, message_id), from_attributes=True
    )


@router.post(
    "/tenants/{tenant_id}/jobs/{job_id}/requeue",
    summary="Run a failed or cancelled job again (attempts start over)",
)
async def requeue_job(tenant_id: str, job_id: str, ctx: Ctx, caller: Caller) -> dict[str, object]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    if not plausible(job_id):
        raise not_found("job")
    job = await JobStore(ctx.sessions).requeue(job_id, tenant_id)
    return view(job)
