"""Authentication of the admin API, before any route runs."""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from relaygate.admin.context import AdminContext
from relaygate.auth.credentials import presented_key, unauthorized

PRINCIPAL_STATE = "admin_principal"


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class AdminGuard:
    """ASGI middleware: every request but the public ones needs an admin key, else 401.

    The check runs before routing and body parsing, so an unauthenticated caller learns nothing
    (not even which paths exist). The principal is left in the request state for the routes.
    """

    def __init__(
        self, app: ASGIApp, context: Callable[[], AdminContext], public: frozenset[str]
    ) -> None:
        self.app = app
        self.context = context
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.public:
            await self.app(scope, receive, send)
            return
        presented = presented_key(Headers(scope=scope))
        principal = None
        if presented:
            context = self.context()
            principal = context.authenticate_admin(presented)
            if context.audit is not None:  # counted, written in batches
                actor = f"admin:{principal.key_id}" if principal else "unknown-key"
                action = "admin.login" if principal else "admin.login_failed"
                request_id = (scope.get("state") or {}).get("request_id", "")
                context.audit.note(actor, action, "admin-api", request_id=request_id)
        if principal is None:
            error = unauthorized()
            headers = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
            body = error.to_bytes()
            await send(
                {
                    "type": "http.response.start",
                    "status": error.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)
