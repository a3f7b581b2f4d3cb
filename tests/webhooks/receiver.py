"""A webhook receiver for the tests: records every delivery; its path picks its behaviour.

`/ok` 200; `/flaky/<n>` 500 for the first n deliveries of a message, then 200; `/gone` 410;
`/redirect` 302 to `/ok`; `/throttle` 429 with Retry-After 1; `/slow` sleeps past any timeout.
Every answer body carries a marker that must never reach the gateway's logs or API.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

MARKER = "RECEIVER-BODY-MUST-NOT-ECHO"


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    deliveries: list[Delivery] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    def to(self, prefix: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path.startswith(prefix)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        self.deliveries.append(Delivery(path, dict(request.headers), body))
        message = request.headers.get("webhook-id", "")
        self.seen[path + message] += 1
        text = f"{MARKER} {path}"
        if path.startswith("/flaky/"):
            failures = int(path.split("/")[2])
            if self.seen[path + message] <= failures:
                return web.Response(status=500, text=text)
        if path.startswith("/gone"):
            return web.Response(status=410, text=text)
        if path.startswith("/redirect"):
            raise web.HTTPFound("/ok/after-redirect", text=text)
        if path.startswith("/throttle"):
            return web.Response(status=429, text=text, headers={"Retry-After": "1"})
        if path.startswith("/slow"):
            await asyncio.sleep(5)
        return web.Response(status=200, text=text)
