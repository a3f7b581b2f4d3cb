"""Job rows: every state change is one conditional UPDATE, so racing workers cannot both win.

A worker claims a queued job (status queued -> running, with a lease), renews the lease while it
works, and finishes only while it still holds the lease. A job whose lease ran out (its worker
died or hung) goes back to the queue; its first worker's late result is refused. That is
at-least-once execution with exactly-once effect: one result, one webhook message.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.errors import GatewayError
from relaygate.jobs.group_insert import GroupInsert
from relaygate.jobs.model import FINISHED, JobRequest, not_found, view
from relaygate.policy.principal import Principal
from relaygate.store.paging import newest_first
from relaygate.store.tables import Job, WebhookEndpoint, WebhookMessage
from relaygate.store.timestamps import utc


def now_utc() -> datetime:
    """The current time; jobs keep every timestamp in UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """A job id (`job_` and 24 URL-safe characters)."""
    return "job_" + secrets.token_urlsafe(18)


def message_id_of(job_id: str) -> str:
    """The webhook message id of a job's result: the same on every delivery and every retry."""
    return "msg_" + job_id.removeprefix("job_")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who created a job: the principal it runs as."""

    tenant_id: str
    environment: str
    key_id: str
    via: str
    end_user: str | None

    @classmethod
    def of(cls, principal: Principal) -> Owner:
        """The owner of work created by `principal`."""
        return cls(
            principal.tenant_id,
            principal.environment,
            principal.key_id,
            principal.via,
            principal.end_user,
        )


def queued_job(
    owner: Owner,
    *,
    url: str,
    body: Any,
    max_attempts: int,
    moment: datetime,
    kicked_at: datetime | None,
    **fields: Any,
) -> Job:
    """A new job row, queued and due now, run as `owner`; `fields` sets the optional columns."""
    return Job(
        id=new_job_id(),
        tenant_id=owner.tenant_id,
        environment=owner.environment,
        key_id=owner.key_id,
        via=owner.via,
        end_user=owner.end_user,
        url=url,
        body=orjson.dumps(body).decode(),
        status="queued",
        attempts=0,
        max_attempts=max_attempts,
        not_before=moment,
        kicked_at=kicked_at,
        cancel_requested=False,
        created_at=moment,
        version=1,
        **fields,
    )


async def stop_jobs(
    session: AsyncSession,
    where: tuple[ColumnElement[bool], ...],
    moment: datetime,
    error: dict[str, Any] | None = None,
) -> None:
    """Cancel the queued jobs matching `where` now (with `error`, if given) and ask the running
    ones to stop: their workers notice at the next lease renewal."""
    stopped: dict[str, Any] = {"status": "cancelled", "finished_at": moment}
    if error is not None:
        stopped["error"] = error
    await session.execute(
        update(Job).where(*where, Job.status == "queued").values(**stopped, version=Job.version + 1)
    )
    await session.execute(
        update(Job)
        .where(*where, Job.status == "running")
        .values(cancel_requested=True, version=Job.version + 1)
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended, to be written if the lease is still held."""

    status: str  # succeeded | failed
    http_status: int | None
    result: bytes | None
    error: dict[str, Any] | None
    usage: dict[str, Any] | None
    cost_usd: float | None
    route: str | None
    provider_ms: float | None


class JobStore:
    """Database operations on jobs; callers pass tenant ids so no lookup crosses tenants."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._inserts = GroupInsert(sessions)

    async def create(
        self,
        owner: Owner,
        request: JobRequest,
        idempotency_key: str | None,
        max_attempts: int,
        endpoint_id: str | None,
    ) -> tuple[Job, bool]:
        """Insert a queued job; with a known Idempotency-Key, the earlier job (created=False)."""
        digest = request.digest()
        moment = now_utc()
        job = queued_job(
            owner,
            url=request.url,
            body=request.body,
            max_attempts=max_attempts,
            moment=moment,
            kicked_at=moment,
            idempotency_key=idempotency_key,
            request_hash=digest,
            callback_url=request.callback_url,
            endpoint_id=endpoint_id,
            metadata_=request.metadata,
        )
        # One statement: a repeated key is the rare case, so it costs the extra lookup.
        if await self._inserts.insert(job):
            return job, True
        earlier = None
        if idempotency_key is not None:
            earlier = await self._by_idempotency_key(owner.tenant_id, idempotency_key)
        if earlier is None:
            raise GatewayError(500, "the job could not be stored; try again")
        return self._same_request(earlier, digest), False

    @staticmethod
    def _same_request(job: Job, digest: str) -> Job:
        if job.request_hash != digest:
            raise GatewayError(
                422,
                "this Idempotency-Key was used with a different request",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return job

    async def _by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        async with self.sessions() as session:
            found: Job | None = await session.scalar(
                select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
            )
            return found

    async def get(self, job_id: str, tenant_id: str | None = None) -> Job | None:
        """The job, or None (also when it belongs to another tenant than `tenant_id`)."""
        async with self.sessions() as session:
            job = await session.get(Job, job_id)
        if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
            return None
        return job

    async def version(self, job_id: str) -> int | None:
        """The job's current version (cheap, for watchers)."""
        async with self.sessions() as session:
            value: int | None = await session.scalar(select(Job.version).where(Job.id == job_id))
            return value

    async def page(
        self,
        tenant_id: str,
        *,
        status: str | None,
        after: str | None,
        limit: int,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Sequence[Job]:
        """The tenant's jobs, newest first; `after` is the last id of the previous page."""
        # Lines of batches are listed with their batch, not here.
        query = select(Job).where(Job.tenant_id == tenant_id, Job.batch_id.is_(None))
        if status is not None:
            query = query.where(Job.status == status)
        if created_after is not None:
            query = query.where(Job.created_at >= created_after)
        if created_before is not None:
            query = query.where(Job.created_at < created_before)
        async with self.sessions() as session:
            return await newest_first(session, Job, query, tenant_id, after, limit)

    async def cancel(self, job_id: str, tenant_id: str) -> Job:
        """Cancel a queued job now; ask a running one to stop (its worker notices on renewal)."""
        async with self.sessions() as session, session.begin():
            await stop_jobs(session, (Job.id == job_id, Job.tenant_id == tenant_id), now_utc())
        job = await self.get(job_id, tenant_id)
        if job is None:
            raise not_found(job_id)
        return job

    async def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        """Take a queued, due job for `owner`; None if it is not (any more) to be run."""
        moment = now_utc()
        async with self.sessions() as session, session.begin():
            claimed = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued", Job.not_before <= moment)
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_expires_at=moment + timedelta(seconds=lease_s),
                    attempts=Job.attempts + 1,
                    started_at=func.coalesce(Job.started_at, moment),
                    version=Job.version + 1,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job: Job | None = await session.get(Job, job_id)
            return job

    async def renew(self, job_id: str, owner: str, lease_s: float) -> tuple[bool, bool]:
        """Extend the lease: (still held, cancel requested)."""
        moment = now_utc()
        async with self.sessions() as session, session.begin():
            renewed = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
                .values(lease_expires_at=moment + timedelta(seconds=lease_s))
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                return False, False
            cancel = await session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            return True, bool(cancel)

    async def finish(self, job: Job, owner: str, outcome: Outcome) -> bool:
        """Write the outcome if `owner` still holds the lease, with its webhook message (one
        transaction: a result without its notification, or the reverse, cannot happen)."""
        moment = now_utc()
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.lease_owner == owner, Job.status == "running")
                .values(
                    status=outcome.status,
                    http_status=outcome.http_status,
                    result=outcome.result.decode() if outcome.result is not None else None,
                    error=outcome.error,
                    usage=outcome.usage,
                    cost_usd=outcome.cost_usd,
                    route=outcome.route,
                    provider_ms=outcome.provider_ms,
                    queue_ms=_queue_ms(job),
                    finished_at=moment,
                    lease_owner=None,
                    lease_expires_at=None,
                    version=Job.version + 1,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return False
            final = await session.get(Job, job.id, populate_existing=True)
            endpoint = None
            if final is not None and final.endpoint_id is not None and final.callback_url:
                # None if the endpoint was deleted since; its `events` may leave this one out.
                endpoint = await session.get(WebhookEndpoint, final.endpoint_id)
            event_type = f"job.{outcome.status}"
            wanted = endpoint is not None and (
                endpoint.events is None or event_type in endpoint.events
            )
            if final is not None and wanted:
                session.add(
                    WebhookMessage(
                        id=message_id_of(job.id),
                        tenant_id=job.tenant_id,
                        endpoint_id=job.endpoint_id,
                        url=job.callback_url,
                        event_type=event_type,
                        payload=event_payload(final).decode(),
                        status="pending",
                        attempts=0,
                        next_attempt_at=moment,
                        created_at=moment,
                    )
                )
        return True

    async def mark_cancelled(self, job_id: str, owner: str) -> bool:
        """A running job stopped on request."""
        return await self._release(
            job_id,
            owner,
            status="cancelled",
            finished_at=now_utc(),
            error={"code": "cancelled", "message": "cancelled while it was running"},
        )

    async def retry_later(
        self, job_id: str, owner: str, delay_s: float, error: dict[str, Any]
    ) -> bool:
        """Back to the queue after a retryable failure, due in `delay_s`."""
        return await self._release(
            job_id,
            owner,
            status="queued",
            not_before=now_utc() + timedelta(seconds=delay_s),
            kicked_at=None,
            error=error,
        )

    async def _release(self, job_id: str, owner: str, **values: Any) -> bool:
        """Leave the running state with `values`, only while `owner` still holds the lease."""
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
                .values(**values, lease_owner=None, lease_expires_at=None, version=Job.version + 1)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def expire_leases(self) -> int:
        """Return running jobs whose lease ran out to the queue; returns how many."""
        moment = now_utc()
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(Job)
                .where(Job.status == "running", Job.lease_expires_at < moment)
                .values(
                    status="queued",
                    not_before=moment,
                    kicked_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    error={
                        "code": "worker_lost",
                        "message": "the worker stopped renewing its lease",
                    },
                    version=Job.version + 1,
                )
            )
            return int(done.rowcount)  # type: ignore[attr-defined]

    async def due(self, stale_s: float, limit: int = 500) -> list[str]:
        """Queued jobs that are due and were not handed to the queue in the last `stale_s`
        (never kicked, a retry now due, or lost with a crashed process); marks them kicked."""
        moment = now_utc()
        stale = moment - timedelta(seconds=stale_s)
        async with self.sessions() as session, session.begin():
            ids = list(
                await session.scalars(
                    select(Job.id)
                    .where(
                        Job.status == "queued",
                        Job.not_before <= moment,
                        or_(Job.kicked_at.is_(None), Job.kicked_at < stale),
                    )
                    .order_by(Job.not_before)
                    .limit(limit)
                )
            )
            if ids:
                await session.execute(update(Job).where(Job.id.in_(ids)).values(kicked_at=moment))
            return ids

    async def backlog(self) -> tuple[int, datetime | None]:
        """Queued jobs that are due now, and when the longest-waiting of them became due."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(Job.not_before)).where(
                        Job.status == "queued", Job.not_before <= now_utc()
                    )
                )
            ).one()
        count, oldest = row
        return int(count), utc(oldest) if oldest is not None else None

    async def purge(self, finished_before: datetime, limit: int = 1000) -> int:
        """Delete finished jobs (not lines of batches) that ended before `finished_before`."""
        async with self.sessions() as session, session.begin():
            ids = list(
                await session.scalars(
                    select(Job.id)
                    .where(
                        Job.status.in_(sorted(FINISHED)),
                        Job.batch_id.is_(None),
                        Job.finished_at < finished_before,
                    )
                    .limit(limit)
                )
            )
            if ids:
                await session.execute(delete(Job).where(Job.id.in_(ids)))
            return len(ids)

    async def requeue(self, job_id: str, tenant_id: str | None) -> Job:
        """An operator's second chance for a failed or cancelled job: queued, attempts reset."""
        async with self.sessions() as session, session.begin():
            query = update(Job).where(Job.id == job_id, Job.status.in_(["failed", "cancelled"]))
            if tenant_id is not None:
                query = query.where(Job.tenant_id == tenant_id)
            done = await session.execute(
                query.values(
                    status="queued",
                    attempts=0,
                    not_before=now_utc(),
                    kicked_at=None,
                    error=None,
                    result=None,
                    finished_at=None,
                    cancel_requested=False,
                    version=Job.version + 1,
                )
            )
            changed = done.rowcount == 1  # type: ignore[attr-defined]
        job = await self.get(job_id, tenant_id)
        if job is None:
            raise not_found(job_id)
        if not changed:
            raise GatewayError(
                409, f"job is {job.status}; only failed or cancelled jobs can be re-enqueued"
            )
        return job


def _queue_ms(job: Job) -> float | None:
    if job.started_at is None:
        return None
    return round((utc(job.started_at) - utc(job.created_at)).total_seconds() * 1000, 1)


def event_payload(job: Job) -> bytes:
    """The webhook body for a finished job (Standard Webhooks' `type`/`timestamp`/`data`)."""
    return orjson.dumps(
        {
            "type": f"job.{job.status}",
            "timestamp": now_utc().isoformat().replace("+00:00", "Z"),
            "data": view(job),
        }
    )
