"""/v1/jobs: accept a request now (202), run it in the background, report it by polling,
server-sent events or a signed webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.accounting import admit
from relaygate.api.authn import authenticate
from relaygate.api.checks import plausible_id
from relaygate.api.listing import page_args, page_response
from relaygate.api.responses import json_response
from relaygate.api.sse import SSEResponse
from relaygate.api.validation import validate_request
from relaygate.errors import GatewayError, bad_request
from relaygate.jobs.model import FINISHED, JobRequest, etag, not_found, view
from relaygate.jobs.service import JobService
from relaygate.jobs.store import Owner
from relaygate.state import Gateway, gateway
from relaygate.store.tables import Job
from relaygate.webhooks.endpoints import EndpointStore

STATUSES = frozenset({"queued", "running", "succeeded", "failed", "cancelled"})
WATCH_POLL_S = 0.5


def job_service(gw: Gateway) -> JobService:
    """This gateway's jobs service; 503 when jobs are not enabled."""
    if gw.jobs is None:
        raise GatewayError(503, "background jobs are not enabled on this gateway")
    return gw.jobs


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isprintable():
        raise bad_request(
            "Idempotency-Key must be 1 to 255 printable characters", param="Idempotency-Key"
        )
    return value


async def create_job(request: Request) -> Response:
    """POST /v1/jobs -> 202 with the job (200 with the earlier one for a repeated key)."""
    gw, principal, payload = await admit(request)
    service = job_service(gw)
    spec = JobRequest.parse(payload)
    validate_request(spec.url, spec.body, gw.config.bounds, "body.")
    key = _idempotency_key(request)
    endpoint_id = None
    if spec.callback_url is not None:
        endpoint = await EndpointStore(gw.sessions, gw.sealer).match(
            principal.tenant_id, spec.callback_url
        )
        if endpoint is None:
            raise bad_request(
                "callback_url must start with the URL of one of your enabled webhook endpoints"
                " (register it with POST /admin/v1/tenants/{tenant}/webhook-endpoints)",
                param="callback_url",
                code="unregistered_callback_url",
            )
        endpoint_id = endpoint.id
    owner = Owner.of(principal)
    job, created = await service.store.create(
        owner, spec, key, gw.config.jobs.max_attempts, endpoint_id
    )
    if created:
        await service.submit(job.id)
    return json_response(
        view(job),
        202 if created else 200,
        {"location": f"/v1/jobs/{job.id}", "etag": etag(job)},
    )


async def _owned(request: Request) -> tuple[Gateway, JobService, Job]:
    gw = gateway(request)
    principal = await authenticate(request, gw)
    service = job_service(gw)
    job_id = request.path_params["job_id"]
    job = await service.store.get(job_id, principal.tenant_id) if plausible_id(job_id) else None
    if job is None:
        raise not_found(job_id)
    return gw, service, job


def _server_timing(job: Job) -> str:
    parts = []
    if job.queue_ms is not None:
        parts.append(f"queue;dur={job.queue_ms}")
    if job.provider_ms is not None:
        parts.append(f"provider;dur={job.provider_ms}")
    return ", ".join(parts)


async def get_job(request: Request) -> Response:
    """GET /v1/jobs/{id}: the job; 304 when the caller's ETag is still current."""
    _gw, _service, job = await _owned(request)
    tag = etag(job)
    headers = {"etag": tag, "cache-control": "no-cache"}
    timing = _server_timing(job)
    if timing:
        headers["server-timing"] = timing
    if tag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return json_response(view(job), headers=headers)


async def cancel_job(request: Request) -> Response:
    """POST /v1/jobs/{id}/cancel: queued jobs stop now, running ones at their next heartbeat."""
    _gw, service, job = await _owned(request)
    if job.status in FINISHED:
        raise GatewayError(409, f"job is already {job.status}", code="job_finished")
    job = await service.store.cancel(job.id, job.tenant_id)
    return json_response(view(job), headers={"etag": etag(job)})


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise bad_request(f"{name} must be a Unix timestamp in seconds", param=name) from None


async def list_jobs(request: Request) -> Response:
    """GET /v1/jobs?status=&after=&limit=&created_after=&created_before= (newest first)."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    service = job_service(gw)
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise bad_request(f"status must be one of {', '.join(sorted(STATUSES))}", param="status")
    limit, after = page_args(request, 20, 100)
    jobs = await service.store.page(
        principal.tenant_id,
        status=status,
        after=after,
        limit=limit + 1,
        created_after=_time_param(request, "created_after"),
        created_before=_time_param(request, "created_before"),
    )
    return page_response([view(job) for job in jobs[:limit]], len(jobs) > limit)


async def job_events(request: Request) -> SSEResponse:
    """GET /v1/jobs/{id}/events: one `job` event per change, ending with the final state."""
    gw, service, job = await _owned(request)

    async def events() -> AsyncIterator[bytes]:
        current: Job | None = job
        seen = -1
        while current is not None:
            if current.version != seen:
                seen = current.version
                yield (
                    f"id: {current.version}\nevent: job\n".encode()
                    + b"data: "
                    + orjson.dumps(view(current))
                    + b"\n\n"
                )
            if current.status in FINISHED:
                return
            await asyncio.sleep(WATCH_POLL_S)
            if await service.store.version(current.id) != seen:
                current = await service.store.get(current.id)

    return SSEResponse(events(), heartbeat_interval=gw.config.server.heartbeat_interval_s)
