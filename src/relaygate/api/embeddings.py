"""POST /v1/embeddings."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.accounting import RequestLedger, resolve
from relaygate.api.authn import authenticate
from relaygate.api.body import read_json
from relaygate.api.chat import CLIENT_CLOSED
from relaygate.api.disconnect import ClientDisconnected, unless_disconnected
from relaygate.api.validation import validate_embeddings
from relaygate.errors import UpstreamError
from relaygate.providers.base import JSON
from relaygate.routing.catalog import Deployment
from relaygate.routing.failover import first_success
from relaygate.state import gateway
from relaygate.usage.cost import Usage
from relaygate.usage.meter import UsageMeter


async def embeddings(request: Request) -> Response:
    """The OpenAI embeddings endpoint."""
    gw = gateway(request)
    principal = authenticate(request, gw.keyring)
    body = await read_json(
        request, gw.config.server.max_body_bytes, gw.config.server.body_timeout_s
    )
    model, end_user = validate_embeddings(body)
    route, deployments = resolve(gw, model, frozenset({"embeddings"}))
    ledger = RequestLedger(
        gw=gw,
        request_id=request.scope["state"]["request_id"],
        principal=principal,
        endpoint="embeddings",
        route=route.name,
        end_user=end_user,
        stream=False,
        meter=UsageMeter(gw.counter),
    )

    async def call(deployment: Deployment) -> JSON:
        return await deployment.provider.embed(body, deployment.model)

    try:
        result, ledger.attempted = await unless_disconnected(
            request.receive, first_success(deployments, call)
        )
    except ClientDisconnected:
        ledger.finish(Usage(), CLIENT_CLOSED, "cancelled")
        return Response(status_code=CLIENT_CLOSED)
    except UpstreamError as exc:
        ledger.finish(Usage(), exc.status, "upstream_error")
        exc.headers.update(ledger.headers())
        raise
    if not result.get("usage"):
        tokens = gw.counter.count_embedding_input(body.get("input"))
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    ledger.finish(Usage.from_openai(result["usage"]), 200, "ok")
    return Response(orjson.dumps(result), media_type="application/json", headers=ledger.headers())
