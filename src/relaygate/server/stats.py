"""What a worker's server turned away or lost before the app could answer: counted per process.

The workers' protocol (`server.protocol`) counts two things the app never sees as a request:

- requests the HTTP parser refused (bare CR or LF, header continuation lines, a NUL in a
  header, conflicting or negative Content-Length, Content-Length with chunked, an unknown
  method, ...), answered 400 in the error envelope, by the parser's reason;
- connections a client closed while its request body was still arriving (before its answer was
  complete): a normal event on the internet, not an error of the gateway.

One `ServerStats` serves every connection of a worker process. It lives in the server's
lifespan state (a dict uvicorn hands to every connection of the process; each request's
`scope["state"]` is a shallow copy of it), so no module holds it. The admin API reads it
through the `relaygate.stats` scope extension (`GET /admin/v1/server/stats`).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

STATE_KEY = "relaygate.server_stats"


@dataclass
class ServerStats:
    """Counters of one worker process since it started."""

    started_at: float = field(default_factory=time.time)
    invalid_requests: Counter[str] = field(default_factory=Counter)  # by the parser's reason
    body_disconnects: int = 0
    extension: dict[object, object] = field(init=False)  # the `relaygate.stats` extension

    def __post_init__(self) -> None:
        self.extension = {"snapshot": self.snapshot}  # made once, put in every request's scope

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready values."""
        return {
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "invalid_http_requests": sum(self.invalid_requests.values()),
            "invalid_http_requests_by_reason": dict(sorted(self.invalid_requests.items())),
            "body_disconnects": self.body_disconnects,
        }


def server_stats(state: dict[str, Any]) -> ServerStats:
    """The process's counters in the server's lifespan `state`, made on first use."""
    stats = state.get(STATE_KEY)
    if not isinstance(stats, ServerStats):
        stats = state[STATE_KEY] = ServerStats()
    return stats
