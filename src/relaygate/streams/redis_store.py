"""Resumable streams in Redis, so a client can resume on any replica.

Each stream is a Redis stream whose entry ids are the event ids (`n-0`), plus a small hash with
the owner, the stop flag and the last event id; both expire `ttl_s` after the last write. A stream
keeps at least its latest `max_events` events (Redis trims whole nodes, so a few more may stay).
Readers block in XREAD; the end is an entry with an `end` field, so blocked readers wake for it
too.
"""

from __future__ import annotations

from typing import Any

from relaygate.streams.store import Frame

_APPEND = """
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], n .. '-0', 'f', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return redis.call('HGET', KEYS[2], 'cancel') or '0'
"""


class RedisStreamStore:
    """Streams shared by every replica through Redis."""

    def __init__(self, client: Any, prefix: str, max_events: int) -> None:
        self.client = client
        self.prefix = prefix
        self.max_events = max_events
        self._append = client.register_script(_APPEND)
        self._ttl: dict[str, int] = {}

    def _keys(self, stream_id: str) -> tuple[str, str]:
        base = f"{self.prefix}rs:{stream_id}"
        return base, base + ":meta"

    async def open(self, stream_id: str, tenant_id: str, ttl_s: float) -> None:
        meta = self._keys(stream_id)[1]
        ttl = max(1, int(ttl_s))
        self._ttl[stream_id] = ttl
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(meta, mapping={"tenant": tenant_id, "n": 0, "cancel": 0})
            pipe.expire(meta, ttl)
            await pipe.execute()

    async def append(self, stream_id: str, frame: bytes) -> bool:
        events, meta = self._keys(stream_id)
        ttl = self._ttl.get(stream_id, 600)
        cancel = await self._append(keys=[events, meta], args=[frame, ttl, self.max_events])
        return bool(int(cancel) == 0)

    async def close(self, stream_id: str) -> None:
        events, meta = self._keys(stream_id)
        ttl = self._ttl.pop(stream_id, 600)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(meta, "done", 1)
            pipe.xadd(events, {"end": 1}, id="*")
            pipe.expire(events, ttl)
            pipe.expire(meta, ttl)
            await pipe.execute()

    async def owner(self, stream_id: str) -> str | None:
        value = await self.client.hget(self._keys(stream_id)[1], "tenant")
        return value.decode() if isinstance(value, bytes) else value

    async def read(self, stream_id: str, after: int, wait_s: float) -> tuple[list[Frame], bool]:
        events, meta = self._keys(stream_id)
        block_ms = max(1, int(wait_s * 1000))
        answer = await self.client.xread({events: f"{after}-0"}, block=block_ms, count=1000)
        frames: list[Frame] = []
        ended = False
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                if b"end" in fields:
                    ended = True
                    break
                number = int(entry_id.split(b"-")[0])
                frames.append((number, fields[b"f"]))
        if not answer:
            # Nothing new within the wait: ended, expired or still generating?
            done, tenant = await self.client.hmget(meta, ["done", "tenant"])
            ended = tenant is None or done is not None
        return frames, ended

    async def cancel(self, stream_id: str) -> None:
        await self.client.hset(self._keys(stream_id)[1], "cancel", 1)

    def held_here(self) -> int:
        return 0  # the events are in Redis, readable from any process

    async def aclose(self) -> None:
        self._ttl.clear()
        await self.client.aclose()
