"""Cancel work when the client goes away.

After the request body has been read, the ASGI `receive` callable only returns when the client
disconnects. Racing it against the upstream call lets us cancel the upstream request (closing its
connection) within milliseconds of the disconnect, for streaming and non-streaming requests alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was ready."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and raising ClientDisconnected) if the client leaves first.

    `work` runs in the caller's task; one watcher task cancels that task if the client goes.
    (Running `work` in a task of its own and racing the two with `asyncio.wait` cost a second
    task, futures and callbacks on every request.)
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await wait_for_disconnect(receive)
        gone = True
        current.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (shutdown): not ours to absorb
        current.uncancel()
        raise ClientDisconnected from None
    finally:
        watcher.cancel()
