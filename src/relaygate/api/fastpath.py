"""The data-plane endpoints straight to their handlers, everything else through Starlette.

Starlette's stack wraps each request in an error middleware, an exception middleware, a router
that tries each route's pattern, and a per-route exception wrapper. For the two endpoints that
carry nearly all traffic the path and method are known exactly, so this dispatcher looks them up
in a dict and gives the handler's errors the same envelopes as the app's exception handlers
(decision 0018). Lifespan, admin and every other path go to the Starlette app unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaygate.api.errors import error_response, unexpected_error
from relaygate.api.headers import IndexedRequest
from relaygate.errors import GatewayError

Handler = Callable[[Request], Awaitable[ASGIApp]]  # a handler returns a response


class FastPaths:
    """ASGI app: `POST <path>` for the paths in `handlers`, else `app`."""

    def __init__(self, app: Starlette, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self._handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # handlers find the gateway state through request.app
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        request = IndexedRequest(scope, receive, sender)
        try:
            response = await handler(request)
            await response(scope, receive, sender)
        except Exception as exc:
            if started:  # a stream broke after its headers: nothing left to answer with
                raise
            if isinstance(exc, GatewayError):
                error = error_response(exc)
            else:
                error = await unexpected_error(request, exc)
            await error(scope, receive, send)
