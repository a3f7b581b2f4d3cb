"""A job as the API shows it, and the request it carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from relaygate.errors import GatewayError, bad_request
from relaygate.store.tables import Job
from relaygate.store.timestamps import unix

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ENDPOINTS: frozenset[str] = frozenset({"/v1/chat/completions", "/v1/embeddings"})
MAX_METADATA_KEYS = 16


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What `POST /v1/jobs` asks for, validated (a line of OpenAI's Batch API, plus delivery)."""

    url: str
    body: dict[str, Any]
    callback_url: str | None
    metadata: dict[str, str] | None

    @classmethod
    def parse(cls, payload: Any) -> JobRequest:
        """Validate a request body; every problem is a 400 naming the field."""
        if not isinstance(payload, dict):
            raise bad_request("the body must be a JSON object")
        unknown = sorted(set(payload) - {"url", "body", "callback_url", "metadata", "method"})
        if unknown:
            raise bad_request(f"unknown field '{unknown[0]}'", param=unknown[0])
        url = payload.get("url")
        if not isinstance(url, str) or url not in ENDPOINTS:
            raise bad_request(f"url must be one of {', '.join(sorted(ENDPOINTS))}", param="url")
        if payload.get("method", "POST") != "POST":
            raise bad_request("method must be POST", param="method")
        body = payload.get("body")
        if not isinstance(body, dict):
            raise bad_request("body must be a JSON object (the request to run)", param="body")
        if body.get("stream"):
            raise bad_request(
                "jobs do not stream; watch GET /v1/jobs/{id}/events instead",
                param="body.stream",
            )
        callback = payload.get("callback_url")
        if callback is not None and (
            not isinstance(callback, str) or len(callback) > 2048 or "\x00" in callback
        ):
            raise bad_request("callback_url must be a URL string", param="callback_url")
        return cls(url, body, callback, metadata_of(payload.get("metadata")))

    def digest(self) -> str:
        """What an Idempotency-Key is bound to: the same key with another request is a 422."""
        canonical = orjson.dumps(
            [self.url, self.body, self.callback_url, self.metadata], option=orjson.OPT_SORT_KEYS
        )
        return hashlib.sha256(canonical).hexdigest()


def metadata_of(value: Any) -> dict[str, str] | None:
    # OpenAI's metadata rules: up to 16 string pairs, keys <= 64 and values <= 512 characters.
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise bad_request("metadata must be an object of at most 16 pairs", param="metadata")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise bad_request(
                "metadata keys must be at most 64 characters and values strings of at most 512",
                param="metadata",
            )
    return dict(value)


def etag(job: Job) -> str:
    """A strong validator: it changes whenever anything in the job changes."""
    return f'"{job.id}.{job.version}"'


def view(job: Job) -> dict[str, Any]:
    """The job's public JSON (`object: "job"`); the result is the OpenAI response as received."""
    return {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "url": job.url,
        "created_at": unix(job.created_at),
        "started_at": unix(job.started_at),
        "finished_at": unix(job.finished_at),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "callback_url": job.callback_url,
        "metadata": job.metadata_,
        "result": orjson.loads(job.result) if job.result is not None else None,
        "error": job.error,
        "usage": job.usage,
        "cost_usd": job.cost_usd,
        "route": job.route,
        "timings": {"queue_ms": job.queue_ms, "provider_ms": job.provider_ms},
    }


def not_found(job_id: str) -> GatewayError:
    """The one answer for a job that does not exist or belongs to another tenant."""
    return GatewayError(404, f"no job with id '{job_id[:64]}'", code="job_not_found")
