"""GET /v1/models and /v1/models/{id}: what the caller may use."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.accounting import resolve
from relaygate.api.authn import authenticate
from relaygate.policy.enforce import allowed_models
from relaygate.routing.catalog import Route
from relaygate.state import gateway

CREATED = 1_700_000_000  # a fixed epoch: model entries come from configuration, not from time


def _entry(route: Route) -> dict[str, object]:
    owners = sorted({d.provider_name for d in route.deployments})
    return {
        "id": route.name,
        "object": "model",
        "created": CREATED,
        "owned_by": owners[0] if len(owners) == 1 else "relaygate",
    }


async def list_models(request: Request) -> Response:
    """Every route alias and provider/model reference the caller may use."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    allowed = allowed_models(gw.policy.tenant(principal.tenant_id), principal.key)
    data = [_entry(r) for r in gw.catalog.listed() if allowed is None or r.name in allowed]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def retrieve_model(request: Request) -> Response:
    """One model entry, or 404 (also for a model outside the caller's allowlist)."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    route, _ = resolve(gw, principal, request.path_params["model"], frozenset())
    return Response(orjson.dumps(_entry(route)), media_type="application/json")
