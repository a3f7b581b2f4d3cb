"""POST /v1/embeddings."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.accounting import (
    CLIENT_CLOSED,
    RequestLedger,
    admit,
    call_routed,
    cost_cap,
    resolve,
)
from relaygate.api.validation import validate_embeddings
from relaygate.config.schema import Capability
from relaygate.providers.base import JSON
from relaygate.routing.catalog import Deployment
from relaygate.usage.cost import Usage


async def embeddings(request: Request) -> Response:
    """The OpenAI embeddings endpoint."""
    gw, principal, body = await admit(request)
    model, end_user = validate_embeddings(body, gw.config.bounds)
    needs: frozenset[Capability] = frozenset({"embeddings"})
    route, deployments = resolve(gw, principal, model, needs)
    ledger = RequestLedger.start(
        request,
        gw,
        principal,
        endpoint="embeddings",
        route=route.name,
        end_user=end_user,
        stream=False,
    )

    def count_input() -> int:
        return gw.counter.count_embedding_input(body.get("input"))

    deployments = await ledger.enforce(principal, route, deployments, needs, 0, count_input)
    size_hint = len(orjson.dumps(body.get("input"))) // 4
    ledger.route_plan(route, deployments, None, count_input, size_hint, cost_cap(request))

    async def call(deployment: Deployment, timeout_s: float) -> JSON:
        return await deployment.provider.embed(body, deployment.model, timeout_s)

    result = await call_routed(request, ledger, call, Usage)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    if not result.get("usage"):
        tokens = gw.counter.count_embedding_input(body.get("input"))
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return ledger.answer(result)
