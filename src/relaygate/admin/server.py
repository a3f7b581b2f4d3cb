"""What the serving worker process counted of requests that never became requests: invalid HTTP
refused by the parser, and clients that left while sending a body (`server.stats`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from relaygate.admin.deps import Caller, operator_only
from relaygate.server import extensions

router = APIRouter(tags=["server"])


class ServerStatsOut(BaseModel):
    """Counters of the worker process that answered, since it started.

    Each worker process counts on its own: with several workers (or replicas) an answer is one
    process's share, named by `pid`. A restart or a recycled worker starts again at zero.
    `counted` is false when the gateway runs under another ASGI server, which counts nothing.
    """

    object: str = "server.stats"
    counted: bool
    pid: int | None = None
    since: str | None = Field(
        None, description="When this process began counting: its first connection (UTC)"
    )
    invalid_http_requests: int | None = Field(
        None,
        description="Requests the HTTP parser refused (400 invalid_http_request, or 431"
        " request_headers_too_large)",
    )
    invalid_http_requests_by_reason: dict[str, int] | None = Field(
        None, description="The same, by the parser's reason"
    )
    body_disconnects: int | None = Field(
        None,
        description="Connections closed by the client while its request body was still arriving",
    )


@router.get("/server/stats", summary="Counters of the worker process that answers (operator only)")
async def server_stats(request: Request, caller: Caller) -> ServerStatsOut:
    operator_only(caller, "read the server's counters")
    offered = extensions.offered(request.scope, extensions.STATS)
    if offered is None:
        return ServerStatsOut(counted=False)
    return ServerStatsOut(counted=True, **offered["snapshot"]())
