"""The ASGI scope extensions the workers' protocol (`server.protocol`) offers the app.

Both are optional for the app: under another ASGI server, or for in-process calls, they are
absent and the app falls back to plain ASGI (a task watching `receive`; a timeout around every
body read).

- `scope["extensions"][DISCONNECT]["watch"](callback) -> withdraw`: `callback()` runs once
  when the client's connection is lost, unless `withdraw()` was called first
  (`api.disconnect.unless_disconnected`).
- `scope["extensions"][BODY]["complete"]() -> bool`: the whole request body has arrived, so
  reading it through `receive` will not wait (`api.body.read_body` then sets no timer).
- `scope["extensions"][STATS]["snapshot"]() -> dict`: this worker process's counters of what
  the server refused or lost before the app could answer (`server.stats`), for
  `GET /admin/v1/server/stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DISCONNECT = "relaygate.disconnect"
BODY = "relaygate.body"
STATS = "relaygate.stats"


def offered(scope: Mapping[str, Any], name: str) -> Any | None:
    """The extension `name` of this request's server, or None where it is not offered."""
    return (scope.get("extensions") or {}).get(name)
