"""The access log: one line per data-plane request, written after its answer is sent.

The request-id middleware opens an entry when a `/v1/` request arrives and closes it once the
last byte of the answer has left (`begin` / `end`). Closed entries are written in batches a
few milliseconds later (`FLUSH_S`), not at once: formatting a line right after the answer
competed with the client's own wake-up for the CPU and showed in the added latency
(`bench.ab`). Each line keeps the time its request ended; `flush()` on shutdown writes what
is left. What only the request's handler knows (tenant, route, provider, model, tokens, cost) comes
from the usage record the handler writes anyway (`UsageRecorder(on_record=...)`): the record
is attached to the entry of the request in progress. A record with no entry open - a job run
in-process, a resumable stream that outlived its client - is written as a line of its own at
once (nobody is waiting for it).

Fields (docs/observability.md#the-access-log): request_id, trace_id (null until tracing
exists), method, path, status, outcome, latency_ms, tenant, environment, key_id, endpoint,
route, provider, model, stream, input_tokens, output_tokens, cached_tokens, cost_usd,
error_type, error_code. Never a key's secret, the end user, the client's address or any
message content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.usage.recorder import UsageEvent

LOGGER = "relaygate.access"
PREFIX = "/v1/"
FLUSH_S = 0.05  # how long a finished request's line may wait to be written


@dataclass(slots=True)
class AccessEntry:
    """One request in progress."""

    request_id: str
    method: str
    path: str
    started: float
    status: int = 0
    error_body: bytes | None = None
    event: UsageEvent | None = None
    closed: bool = False
    ended_at: float = 0.0  # wall-clock time (for the line's `time`)
    latency_ms: float = 0.0


class AccessLog:
    """Writes the access log through the `relaygate.access` logger (at INFO, whatever the
    process's log level: it is switched by `logging.access_log`, not by the level)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(LOGGER)
        self._log.setLevel(logging.INFO)
        # The request in progress in this task (and in the tasks it starts).
        self._current: ContextVar[AccessEntry | None] = ContextVar(
            "relaygate_access_entry", default=None
        )
        # Finished, not yet written: closed entries, and usage records of no request.
        self._pending: list[AccessEntry | UsageEvent] = []
        self._flush_scheduled = False

    @staticmethod
    def wants(path: str) -> bool:
        """True for the data plane's paths (not health checks, not the admin API)."""
        return path.startswith(PREFIX)

    def begin(self, request_id: str, method: str, path: str) -> tuple[AccessEntry, Token[Any]]:
        """Open the entry of a request that has just arrived."""
        entry = AccessEntry(request_id, method, path, time.perf_counter())
        return entry, self._current.set(entry)

    def end(self, entry: AccessEntry, token: Token[Any]) -> None:
        """The answer has been sent (or the request ended without one): its line is due."""
        self._current.reset(token)
        entry.closed = True
        entry.latency_ms = (time.perf_counter() - entry.started) * 1000
        entry.ended_at = time.time()
        self._due(entry)

    def on_usage(self, event: UsageEvent) -> None:
        """A usage record was written: keep it for the request's line, or log it now."""
        entry = self._current.get()
        if (
            entry is not None
            and not entry.closed
            and entry.event is None
            and entry.request_id == event.request_id
        ):
            entry.event = event
            return
        self._due(event)

    def _due(self, item: AccessEntry | UsageEvent) -> None:
        self._pending.append(item)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): write now
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write every line that is due (called by the timer, and on shutdown)."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if not self._log.isEnabledFor(logging.INFO):
            return
        for item in pending:
            if isinstance(item, AccessEntry):
                error_type, error_code = _error_of(item.error_body)
                self._write(
                    item.event, item, item.latency_ms, item.ended_at, error_type, error_code
                )
            else:
                self._write(item, None, item.latency_ms, item.created_at.timestamp(), None, None)

    def _write(
        self,
        event: UsageEvent | None,
        entry: AccessEntry | None,
        latency_ms: float,
        ended_at: float,
        error_type: str | None,
        error_code: str | None,
    ) -> None:
        if entry is not None:
            method, path = entry.method, entry.path
        else:
            method, path = "JOB", event.endpoint if event is not None else ""
        status = event.status if event is not None else entry.status if entry is not None else 0
        fields: dict[str, Any] = {
            "request_id": entry.request_id if entry is not None else _id(event),
            "trace_id": None,
            "method": method,
            "path": path,
            "status": status,
            "outcome": event.outcome if event is not None else _outcome(status),
            "latency_ms": round(latency_ms, 3),
            "tenant": None,
            "environment": None,
            "key_id": None,
            "endpoint": None,
            "route": None,
            "provider": None,
            "model": None,
            "stream": False,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "cost_usd": 0.0,
            "error_type": error_type,
            "error_code": error_code,
        }
        if event is not None:
            fields.update(
                tenant=event.tenant_id,
                environment=event.environment,
                key_id=event.key_id or None,
                endpoint=event.endpoint,
                route=event.route,
                provider=event.provider,
                model=event.model,
                stream=event.stream,
                input_tokens=event.prompt_tokens,
                output_tokens=event.completion_tokens,
                cached_tokens=event.cached_tokens,
                cost_usd=round(event.cost_usd, 10),
            )
        record = self._log.makeRecord(
            self._log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None
        )
        record.created, record.msecs = ended_at, (ended_at % 1) * 1000
        record.__dict__.update(fields)
        self._log.handle(record)


def _id(event: UsageEvent | None) -> str:
    return event.request_id if event is not None else ""


def _outcome(status: int) -> str:
    if 200 <= status < 400:
        return "ok"
    return "error" if status else "no_answer"


def _error_of(body: bytes | None) -> tuple[str | None, str | None]:
    """`type` and `code` of an OpenAI error envelope (never its message, which may quote the
    request)."""
    if not body:
        return None, None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    type_, code = error.get("type"), error.get("code")
    return (
        type_ if isinstance(type_, str) else None,
        str(code) if isinstance(code, (str, int)) else None,
    )
