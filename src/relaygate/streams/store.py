"""Where the events of resumable streams are kept while they last."""

from __future__ import annotations

from typing import Protocol

Frame = tuple[int, bytes]  # event id (1, 2, ...) and the SSE frame without its id line


class StreamStore(Protocol):
    """Events of resumable streams, readable by any number of watchers while they live."""

    async def open(self, stream_id: str, tenant_id: str, ttl_s: float) -> None:
        """Start a stream owned by `tenant_id`; it expires `ttl_s` after its last write."""

    async def append(self, stream_id: str, frame: bytes) -> bool:
        """Add the next event; returns False when someone asked to stop the generation."""

    async def close(self, stream_id: str) -> None:
        """The generation ended: watchers get what is left, then the end."""

    async def owner(self, stream_id: str) -> str | None:
        """The owning tenant, or None for a stream that does not exist (any more)."""

    async def read(self, stream_id: str, after: int, wait_s: float) -> tuple[list[Frame], bool]:
        """Events after id `after` (waiting up to `wait_s` for one), and whether the stream
        has ended. An unknown or expired stream reads as ended and empty."""

    async def cancel(self, stream_id: str) -> None:
        """Ask the generation to stop (it does at its next event)."""

    def held_here(self) -> int:
        """Live streams whose events exist only in this process (a worker is not recycled
        while it holds any: their watchers could not resume elsewhere)."""

    async def aclose(self) -> None:
        """Release connections."""
