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


def _watch(scope: Scope, receive: Receive, callback: Callable[[], None]) -> Callable[[], object]:
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


class CancelOnDisconnect:
    """While the block runs, the client's disconnect cancels the current task; the block then
    ends with `ClientDisconnected`. A cancellation from elsewhere (shutdown) passes through.

    The cancelled task is the caller's own: no second task runs the work. (Running it in a task
    of its own and racing the two with `asyncio.wait` cost a task, futures and callbacks on every
    request.)
    """

    __slots__ = ("_gone", "_receive", "_scope", "_stop", "_task")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._scope = scope
        self._receive = receive
        self._gone = False

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._stop = _watch(self._scope, self._receive, self._leave)

    def _leave(self) -> None:
        if not self._gone:
            self._gone = True
            self._task.cancel()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._stop()
        if exc_type is asyncio.CancelledError and self._gone:
            self._task.uncancel()
            raise ClientDisconnected from None


async def unless_disconnected(scope: Scope, receive: Receive, work: Awaitable[T]) -> T:
    """Await `work` in the caller's task, cancelling it (and raising ClientDisconnected) if the
    client leaves first (`CancelOnDisconnect`)."""
    with CancelOnDisconnect(scope, receive):
        return await work
