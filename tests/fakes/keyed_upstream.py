"""An OpenAI-compatible upstream that accepts only the bearer keys a test says are valid.

It records the key each request carried, so a test sees exactly which credential was used.
A request whose last message contains `POISON` is refused with a 400 (a request the provider
finds invalid, whoever's key it carries); the model `gpt-500` always fails with a 500.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

POISON = "POISON"


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
        if body.get("model") == "gpt-500":
            return web.json_response(
                {"error": {"message": "internal", "type": "server_error", "param": None}},
                status=500,
            )
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
        if POISON in str((body.get("messages") or [{}])[-1].get("content")):
            return web.json_response(
                {
                    "error": {
                        "message": "Invalid 'messages[0].content': this content is refused.",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "invalid_value",
                    }
                },
                status=400,
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
