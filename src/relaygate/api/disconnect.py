"""Cancel work when the client goes away.

After the request body has been read, the ASGI `receive` callable only returns when the client
disconnects. Racing it against the upstream call lets us cancel the upstream request (closing its
connection) within milliseconds of the disconnect, for streaming and non-streaming requests alike.

Watching `receive` takes a task per request. The gateway's own server offers a cheaper way: the
scope's `relaygate.disconnect` extension (`server.extensions`) registers a callback for the loss
of the connection. Under any other ASGI server (or for in-process calls) the watcher task is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.types import Receive, Scope

from relaygate.server import extensions

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was ready."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def on_disconnect(
    scope: Scope, receive: Receive, callback: Callable[[], None]
) -> Callable[[], object]:
    """Call `callback` when the client disconnects: through the server's `relaygate.disconnect`
    extension, else from a task reading `receive`. Returns the function that stops watching."""
    extension = extensions.offered(scope, extensions.DISCONNECT)
    if extension is not None:
        stop: Callable[[], object] = extension["watch"](callback)
        return stop

    async def watch() -> None:
        await wait_for_disconnect(receive)
        callback()

    return asyncio.create_task(watch()).cancel


async def unless_disconnected(scope: Scope, receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and raising ClientDisconnected) if the client leaves first.

    `work` runs in the caller's task, which is cancelled if the client goes: told by the
    server's `relaygate.disconnect` extension, or else by a watcher task reading `receive`.
    (Running `work` in a task of its own and racing the two with `asyncio.wait` cost a second
    task, futures and callbacks on every request.)
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def leave() -> None:
        nonlocal gone
        gone = True
        current.cancel()

    stop = on_disconnect(scope, receive, leave)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (shutdown): not ours to absorb
        current.uncancel()
        raise ClientDisconnected from None
    finally:
        stop()
