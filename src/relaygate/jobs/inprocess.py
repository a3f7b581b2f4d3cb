"""Run one data-plane request through the gateway's own ASGI app, without a socket.

A job goes through exactly the handler a synchronous request would (routing, limits, budgets,
usage records); only authentication differs: the principal that created the job is placed in
the request scope, which no HTTP client can reach.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message

from relaygate.policy.principal import Principal

PRINCIPAL_STATE = "job_principal"
REPORT_STATE = "job_report"


@dataclass(slots=True)
class Response:
    """What the handler answered."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    report: dict[str, Any] = field(default_factory=dict)


async def call(
    app: ASGIApp, path: str, body: bytes, principal: Principal, request_id: str
) -> Response:
    """POST `body` to `path` as `principal`; the usage ledger fills `report` (cost, usage)."""
    response = Response()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("job", 0),
        "server": ("relaygate", 0),
        "state": {
            "request_id": request_id,
            PRINCIPAL_STATE: principal,
            REPORT_STATE: response.report,
        },
    }
    sent = False
    never = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the "client" never leaves; cancellation ends the call
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response
