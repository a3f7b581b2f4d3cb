"""Pure ASGI middleware wrapped around the whole app: request ids on every response, the
count of requests in flight (a worker is recycled only when it has none), and the access log's
line of each data-plane request, written once its answer is sent (observability/access.py).

It sits outside Starlette's ServerErrorMiddleware so even a 500 carries its request id, and it
absorbs the exception that ServerErrorMiddleware re-raises after answering, so the server logs
one line without a traceback (tracebacks can quote request data).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaygate.observability.access import AccessLog

log = logging.getLogger("relaygate.api")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Honours a well-formed client `X-Request-ID` or makes one; echoes it on the response.

    A made id is `req_`, 16 hex digits drawn at random when the app is built (once per worker
    process), and a 16-digit counter: unique across workers and replicas without a call to the
    operating system's random source on every request. Ids name requests in logs and records;
    they are not secrets (a client may choose its own).
    """

    def __init__(self, app: ASGIApp, access: AccessLog | None = None) -> None:
        self.app = app
        self.access = access
        self._id_prefix = "req_" + secrets.token_hex(8)
        self._id_counter = itertools.count(1)
        self.in_flight = 0  # HTTP requests started and not yet finished
        self.started = 0  # HTTP requests started since the process began

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or f"{self._id_prefix}{next(self._id_counter):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        access = self.access
        if access is None or not access.wants(scope["path"]):
            entry = token = None
        else:
            entry, token = access.begin(request_id, scope["method"], scope["path"])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                if entry is not None:
                    entry.status = message["status"]
            elif entry is not None and entry.status >= 400 and entry.error_body is None:
                entry.error_body = message.get("body", b"")  # its error type, for the log
            await send(message)

        self.in_flight += 1
        self.started += 1
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            pass  # the client left while sending its body: logged at INFO by api.errors
        except Exception as exc:
            log.error("request %s failed: %s", request_id, type(exc).__name__)
        finally:
            self.in_flight -= 1
            if entry is not None and token is not None and access is not None:
                access.end(entry, token)
