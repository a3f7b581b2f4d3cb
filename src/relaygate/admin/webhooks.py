"""Webhook endpoints (register, change, delete, rotate secrets, see their delivery health), their
messages and delivery log, manual redelivery, and re-enqueueing failed jobs.

Every URL goes through the SSRF guard when it is registered or changed: a literal address (in
any spelling) the guard refuses is refused here with its reason, not accepted to fail at every
delivery; a host name that resolves to a refused address now is refused too, and any other name
is accepted with a note that it is checked again at every delivery.
"""

from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.deps import Caller, Ctx, conflict, not_found, plausible, tenant_row
from relaygate.admin.schemas import (
    AttemptOut,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    EndpointRotate,
    Listing,
    MessageOut,
)
from relaygate.errors import GatewayError, bad_request
from relaygate.jobs.model import view
from relaygate.jobs.store import JobStore
from relaygate.store.tables import WebhookAttempt, WebhookEndpoint, WebhookMessage
from relaygate.webhooks.endpoints import DuplicateEndpoint, EndpointStore
from relaygate.webhooks.ssrf import Destination, UnsafeDestination, vet_registration

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("relaygate.webhooks")


def endpoint_out(
    row: WebhookEndpoint, secret: str | None = None, destination_check: str | None = None
) -> EndpointOut:
    """The API view of an endpoint (with its new secret, right after creation or rotation)."""
    out = EndpointOut.model_validate(
        {
            **{name: getattr(row, name) for name in EndpointOut.model_fields if hasattr(row, name)},
            "enabled": row.disabled_at is None,
            "consecutive_failures": row.consecutive_failures or 0,
            "delivered_count": row.delivered_count or 0,
            "failed_count": row.failed_count or 0,
            "refused_count": row.refused_count or 0,
        }
    )
    return out.model_copy(update={"secret": secret, "destination_check": destination_check})


async def _endpoint(ctx: Ctx, caller: Caller, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    row = None
    if plausible(endpoint_id):
        row = await EndpointStore(ctx.sessions, ctx.sealer).get(endpoint_id, tenant_id)
    if row is None:
        raise not_found("webhook endpoint")
    return row


async def vet(url: str, allow_private: list[str] | None) -> str | None:
    """400 `unsafe_destination` for a URL the SSRF guard refuses now; for a host name, the note
    that it is checked again at every delivery."""
    destination = Destination(
        allow_private=frozenset(ipaddress.ip_network(n) for n in allow_private or ())
    )
    try:
        return await vet_registration(url, destination)
    except UnsafeDestination as exc:
        raise GatewayError(
            400,
            f"unsafe destination: {exc}. Deliveries there would be refused; to reach a private"
            ' network on purpose, open it with "allow_private" (e.g. ["10.0.0.5/32"])',
            param="url",
            code="unsafe_destination",
        ) from None


def duplicate(exc: DuplicateEndpoint) -> GatewayError:
    """The 409 for a second endpoint with the same URL in one tenant."""
    return conflict(
        f"this tenant already has webhook endpoint {exc.endpoint_id} for this URL;"
        " change it with PATCH or remove it with DELETE"
    )


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
    note = await vet(body.url, body.allow_private)
    try:
        row, secret = await EndpointStore(ctx.sessions, ctx.sealer).create(
            tenant_id, body.url, body.description, body.allow_private, body.events
        )
    except DuplicateEndpoint as exc:
        raise duplicate(exc) from None
    return endpoint_out(row, secret, note)


@router.get("/tenants/{tenant_id}/webhook-endpoints", summary="List a tenant's endpoints")
async def list_endpoints(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[EndpointOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
    rows = await EndpointStore(ctx.sessions, ctx.sealer).list(tenant_id)
    return Listing[EndpointOut](data=[endpoint_out(r) for r in rows])


@router.get(
    "/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}",
    summary="An endpoint and its delivery health (last error, failure counts)",
)
async def get_endpoint(tenant_id: str, endpoint_id: str, ctx: Ctx, caller: Caller) -> EndpointOut:
    return endpoint_out(await _endpoint(ctx, caller, tenant_id, endpoint_id))


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


@router.patch(
    "/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}",
    summary="Change the URL, description, private networks or events; enable or disable",
)
async def patch_endpoint(
    tenant_id: str, endpoint_id: str, body: EndpointPatch, ctx: Ctx, caller: Caller
) -> EndpointOut:
    row = await _endpoint(ctx, caller, tenant_id, endpoint_id)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("url", "description", "enabled"):
        if name in changes and changes[name] is None:
            raise bad_request(f"{name} cannot be null", param=name)
    note = None
    # A new destination, or one about to receive deliveries again, is vetted like a new one.
    if {"url", "allow_private"} & changes.keys() or changes.get("enabled") is True:
        note = await vet(
            changes.get("url", row.url), changes.get("allow_private", row.allow_private)
        )
    try:
        fresh = await EndpointStore(ctx.sessions, ctx.sealer).update(row, changes)
    except DuplicateEndpoint as exc:
        raise duplicate(exc) from None
    except LookupError:
        raise not_found("webhook endpoint") from None
    return endpoint_out(fresh, destination_check=note)


@router.delete(
    "/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}",
    status_code=204,
    summary="Delete an endpoint with its messages and delivery log (pending messages are"
    " dropped; disable it instead to keep them)",
)
async def delete_endpoint(tenant_id: str, endpoint_id: str, ctx: Ctx, caller: Caller) -> None:
    row = await _endpoint(ctx, caller, tenant_id, endpoint_id)
    dropped = await EndpointStore(ctx.sessions, ctx.sealer).delete(row)
    log.info("webhook endpoint %s deleted (%d pending messages dropped)", row.id, dropped)


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
