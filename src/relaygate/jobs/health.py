"""Can queued work be taken? The jobs part of `/readyz` (decision 0030)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class JobsHealth:
    """Whether anything takes queued jobs, and how much waits. `state` is `ok` when this
    process runs jobs or a worker was heard from within `worker_timeout_s`, else `degraded`."""

    state: Literal["ok", "degraded"]
    queue: str  # embedded | redis
    runs_here: bool
    workers: int | None  # workers heard from within the timeout (None: could not be read)
    last_worker_seen_s: float | None  # seconds since any worker was last heard from
    worker_timeout_s: float
    queued: int | None  # due jobs waiting (None: could not be read)
    oldest_queued_s: float | None  # how long the longest-waiting due job has waited
    problem: str | None = None  # a backend that could not be read

    def summary(self) -> str:
        """One line for the `checks` of `/readyz`: `ok (...)` or `degraded: ...`."""
        backlog = _backlog(self.queued, self.oldest_queued_s)
        if self.state == "ok":
            who = "run in this process" if self.runs_here else f"{self.workers} worker(s) seen"
            return f"ok ({who}; {backlog})"
        if self.problem is not None:
            return f"degraded: {self.problem}; {backlog}"
        if self.last_worker_seen_s is None:
            nobody = "no worker has announced itself"
        else:
            nobody = f"no worker seen for {self.last_worker_seen_s:.0f} s"
        return f"degraded: {nobody}, queued jobs cannot be taken; {backlog}"

    def as_json(self) -> dict[str, Any]:
        """The detail object of `/readyz` (also what metrics and the console can show)."""
        return asdict(self)


def _backlog(queued: int | None, oldest_s: float | None) -> str:
    if queued is None:
        return "queue depth unknown"
    if queued == 0 or oldest_s is None:
        return f"{queued} queued"
    return f"{queued} queued, the oldest for {oldest_s:.0f} s"


def age(moment: float | None, now: float | None = None) -> float | None:
    """Seconds since the Unix time `moment` (never negative), rounded to 0.1 s."""
    if moment is None:
        return None
    return round(max(0.0, (time.time() if now is None else now) - moment), 1)
