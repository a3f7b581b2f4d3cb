"""Authentication of the admin API, before any route runs."""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from relaygate.admin.context import AdminContext
from relaygate.auth.credentials import presented_key, unauthorized

PRINCIPAL_STATE = "admin_principal"


def _route_path(scope: Scope) -> str:
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
        if scope["type"] != "http" or _route_path(scope) in self.public:
            await self.app(scope, receive, send)
            return
        presented = presented_key(Headers(scope=scope))
        principal = self.context().authenticate_admin(presented) if presented else None
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
