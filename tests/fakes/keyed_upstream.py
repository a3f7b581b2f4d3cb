"""An OpenAI-compatible upstream that accepts only the bearer keys a test says are valid.

It records the key each request carried, so a test sees exactly which credential was used.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Upstream:
    """Accepts `Bearer <value>` for the values in `valid`; records what each request carried."""

    valid: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.seen.append(token)
            ok = token in self.valid
        if not ok:
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        return web.json_response(
            {
                "id": "chatcmpl-" + uuid.uuid4().hex,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )
