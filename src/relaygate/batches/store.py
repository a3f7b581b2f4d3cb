"""Batches: created with one job per line, finished by the sweeper once no line is left to run.

Lines run as jobs (`jobs.batch_id`), so they get everything jobs have: the same pipeline as a
synchronous request, leases, retries, workers on other machines, crash recovery. Finalising is
one transaction guarded by the batch's status, so two processes cannot both write its files.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.batches.files import new_file
from relaygate.batches.lines import Line
from relaygate.errors import GatewayError
from relaygate.jobs.store import Owner, queued_job, stop_jobs
from relaygate.store.paging import newest_first
from relaygate.store.tables import Batch, Job
from relaygate.store.timestamps import unix, utc

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
WINDOWS = {"24h": timedelta(hours=24)}


def batch_view(batch: Batch, counts: dict[str, int]) -> dict[str, Any]:
    """OpenAI's batch object (plus `cost_usd`)."""
    failed = counts.get("failed", 0) + counts.get("cancelled", 0)
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": unix(batch.created_at),
        "in_progress_at": unix(batch.in_progress_at),
        "expires_at": unix(batch.expires_at),
        "finalizing_at": unix(batch.finalizing_at),
        "completed_at": unix(batch.completed_at),
        "failed_at": unix(batch.failed_at),
        "expired_at": unix(batch.completed_at) if batch.status == "expired" else None,
        "cancelling_at": unix(batch.cancelling_at),
        "cancelled_at": unix(batch.cancelled_at),
        "request_counts": {
            "total": batch.total,
            "completed": counts.get("succeeded", 0),
            "failed": failed,
        },
        "metadata": batch.metadata_,
        "cost_usd": batch.cost_usd,
    }


def batch_not_found(batch_id: str) -> GatewayError:
    """The one answer for a batch that does not exist or belongs to another tenant."""
    return GatewayError(404, f"no batch with id '{batch_id[:64]}'", code="batch_not_found")


class BatchStore:
    """Database operations on batches; every lookup is tenant-scoped."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(
        self,
        owner: Owner,
        endpoint: str,
        input_file_id: str,
        window: str,
        metadata: dict[str, str] | None,
        lines: list[Line],
        errors: list[dict[str, Any]],
        max_attempts: int,
    ) -> tuple[Batch, list[str]]:
        """The batch and its jobs (none, and status failed, when the file had errors)."""
        now = datetime.now(UTC)
        batch = Batch(
            id="batch_" + secrets.token_urlsafe(18),
            tenant_id=owner.tenant_id,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=window,
            status="failed" if errors else "in_progress",
            metadata_=metadata,
            errors={"object": "list", "data": errors} if errors else None,
            total=0 if errors else len(lines),
            created_at=now,
            in_progress_at=None if errors else now,
            failed_at=now if errors else None,
            expires_at=now + WINDOWS[window],
        )
        jobs = []
        if not errors:
            for line in lines:
                jobs.append(
                    queued_job(
                        owner,
                        url=endpoint,
                        body=line.body,
                        max_attempts=max_attempts,
                        moment=now,
                        kicked_at=None,
                        batch_id=batch.id,
                        custom_id=line.custom_id,
                        line=line.number,
                        request_hash="",
                    )
                )
        async with self.sessions() as session, session.begin():
            session.add(batch)
            session.add_all(jobs)
        return batch, [job.id for job in jobs]

    async def get(self, batch_id: str, tenant_id: str) -> Batch | None:
        async with self.sessions() as session:
            row = await session.get(Batch, batch_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def counts(self, batch_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each batch, how many of its lines are in each job status (one query)."""
        found: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
        if not found:
            return found
        async with self.sessions() as session:
            rows = await session.execute(
                select(Job.batch_id, Job.status, func.count())
                .where(Job.batch_id.in_(list(found)))
                .group_by(Job.batch_id, Job.status)
            )
            for batch_id, status, count in rows.all():
                found[str(batch_id)][status] = int(count)
        return found

    async def page(self, tenant_id: str, limit: int, after: str | None) -> Sequence[Batch]:
        query = select(Batch).where(Batch.tenant_id == tenant_id)
        async with self.sessions() as session:
            return await newest_first(session, Batch, query, tenant_id, after, limit)

    async def cancel(self, batch_id: str, tenant_id: str) -> Batch:
        """Stop a batch: queued lines are cancelled now, running ones at their next renewal;
        the sweeper then writes the files of what finished."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            changed = await session.execute(
                update(Batch)
                .where(
                    Batch.id == batch_id,
                    Batch.tenant_id == tenant_id,
                    Batch.status == "in_progress",
                )
                .values(status="cancelling", cancelling_at=now)
            )
            if changed.rowcount == 1:  # type: ignore[attr-defined]
                await _stop_lines(session, batch_id, now)
        batch = await self.get(batch_id, tenant_id)
        if batch is None:
            raise batch_not_found(batch_id)
        if batch.status not in ("cancelling", "cancelled"):
            raise GatewayError(409, f"batch is {batch.status}", code="batch_not_cancellable")
        return batch

    async def finalize_ready(self, limit: int = 20) -> int:
        """Write the output and error files of batches with no line left to run (and expire
        batches past their window); returns how many were finished."""
        now = datetime.now(UTC)
        async with self.sessions() as session:
            candidates = list(
                await session.scalars(
                    select(Batch)
                    .where(Batch.status.in_(["in_progress", "cancelling"]))
                    .order_by(Batch.created_at)
                    .limit(limit)
                )
            )
        finished = 0
        for batch in candidates:
            if batch.status == "in_progress" and utc(batch.expires_at) <= now:
                async with self.sessions() as session, session.begin():
                    await _stop_lines(session, batch.id, now)
            if await self._finalize(batch, now):
                finished += 1
        return finished

    async def _finalize(self, batch: Batch, now: datetime) -> bool:
        async with self.sessions() as session, session.begin():
            pending = await session.scalar(
                select(func.count()).where(
                    Job.batch_id == batch.id, Job.status.in_(["queued", "running"])
                )
            )
            if pending:
                return False
            jobs = list(
                await session.scalars(
                    select(Job).where(Job.batch_id == batch.id).order_by(Job.line)
                )
            )
            output, failures = _output_lines(jobs)
            if batch.status == "cancelling":
                final = "cancelled"
            elif utc(batch.expires_at) <= now:
                final = "expired"
            else:
                final = "completed"
            out = new_file(batch.tenant_id, "batch_output", f"{batch.id}_output.jsonl", output)
            err = new_file(batch.tenant_id, "batch_output", f"{batch.id}_errors.jsonl", failures)
            done = await session.execute(
                update(Batch)
                .where(Batch.id == batch.id, Batch.status == batch.status)
                .values(
                    status=final,
                    finalizing_at=now,
                    completed_at=now if final in ("completed", "expired") else None,
                    cancelled_at=now if final == "cancelled" else None,
                    output_file_id=out.id if output else None,
                    error_file_id=err.id if failures else None,
                    cost_usd=round(sum(j.cost_usd or 0.0 for j in jobs), 10),
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
            session.add_all([f for f, body in ((out, output), (err, failures)) if body])
            return True


async def _stop_lines(session: AsyncSession, batch_id: str, now: datetime) -> None:
    stopped = {"code": "batch_cancelled", "message": "the batch was stopped before this ran"}
    await stop_jobs(session, (Job.batch_id == batch_id,), now, stopped)


def _output_lines(jobs: list[Job]) -> tuple[bytes, bytes]:
    """OpenAI's output file (answers, in input order) and error file (everything else)."""
    output: list[bytes] = []
    failures: list[bytes] = []
    for job in jobs:
        line_id = "batch_req_" + job.id.removeprefix("job_")
        if job.status == "succeeded" and job.result is not None:
            output.append(
                orjson.dumps(
                    {
                        "id": line_id,
                        "custom_id": job.custom_id,
                        "response": {
                            "status_code": 200,
                            "request_id": job.id,
                            "body": orjson.loads(job.result),
                        },
                        "error": None,
                    }
                )
            )
            continue
        error = job.error or {"code": "unknown", "message": "no result"}
        response = None
        if job.http_status is not None:
            response = {
                "status_code": job.http_status,
                "request_id": job.id,
                "body": {"error": error},
            }
        failures.append(
            orjson.dumps(
                {
                    "id": line_id,
                    "custom_id": job.custom_id,
                    "response": response,
                    "error": {"code": error.get("code"), "message": error.get("message")},
                }
            )
        )
    join = b"\n".join
    return (join(output) + b"\n" if output else b""), (join(failures) + b"\n" if failures else b"")
