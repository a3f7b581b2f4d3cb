"""Every successful admin change goes into the audit log (vault routes write their own entries).

Runs inside `AdminGuard`, so the caller is known. The entry names the admin key, the method and
route template, the concrete path and the tenant it concerns; request bodies are not copied
(they may carry key material), the route and ids say what changed.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaygate.admin.context import AdminContext, AdminPrincipal
from relaygate.admin.guard import PRINCIPAL_STATE, route_path

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SELF_AUDITED = "/vault/"


class AuditTrail:
    """ASGI middleware appending one audit entry per successful admin write."""

    def __init__(self, app: ASGIApp, context: Callable[[], AdminContext]) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING
            or path.startswith(SELF_AUDITED)
        ):
            await self.app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        audit = self.context().audit
        principal = scope.get("state", {}).get(PRINCIPAL_STATE)
        if audit is None or not isinstance(principal, AdminPrincipal) or not 200 <= status < 300:
            return
        route = scope.get("route")
        template = getattr(route, "path", path)
        params = scope.get("path_params") or {}
        await audit.append(
            f"admin:{principal.key_id}",
            f"admin.{scope['method'].lower()}",
            path,
            tenant_id=params.get("tenant_id") or principal.tenant_id,
            detail={"route": template, "status": status, **{k: str(v) for k, v in params.items()}},
        )
