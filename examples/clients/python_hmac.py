#!/usr/bin/env python3
"""Call Relaygate with an HMAC-signed request, using only the standard library.

The key itself is never sent: each request carries the key id, a timestamp and an HMAC-SHA256
signature over the method, path, timestamp and the SHA-256 of the exact body bytes.

    export RELAYGATE_URL=http://127.0.0.1:8080
    export RELAYGATE_KEY_ID=...           # "id" from POST /admin/v1/tenants/{tenant}/keys
    export RELAYGATE_SIGNING_SECRET=...   # "signing_secret" from the same answer (shown once)
    python3 python_hmac.py "Say hello"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit


def signed_headers(
    key_id: str,
    secret: str | bytes,
    method: str,
    path: str,
    body: bytes,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three signature headers. `path` is the request path plus `?query`, exactly as sent."""
    key = secret.encode() if isinstance(secret, str) else secret
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    canonical = "\n".join([method.upper(), path, stamp, hashlib.sha256(body).hexdigest()])
    signature = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    return {
        "x-relaygate-key-id": key_id,
        "x-relaygate-timestamp": stamp,
        "x-relaygate-signature": f"v1={signature}",
    }


def chat(base_url: str, key_id: str, secret: str, prompt: str, user: str | None = None) -> object:
    """POST /v1/chat/completions, signed; returns the decoded JSON answer."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    messages = [{"role": "user", "content": prompt}]
    payload: dict[str, object] = {"model": "fast", "messages": messages}
    if user is not None:
        payload["user"] = user  # the end user (e.g. the WordPress user id)
    body = json.dumps(payload).encode()  # sign exactly the bytes that are sent
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("RELAYGATE_URL must be an http(s) URL")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = signed_headers(key_id, secret, "POST", path, body)
    headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:  # 401: {"error": {"message": ..., "code": ...}}
        return json.load(error)


def main() -> None:
    base_url = os.environ.get("RELAYGATE_URL", "http://127.0.0.1:8080")
    key_id, secret = os.environ["RELAYGATE_KEY_ID"], os.environ["RELAYGATE_SIGNING_SECRET"]
    prompt = " ".join(sys.argv[1:]) or "Say hello"
    print(json.dumps(chat(base_url, key_id, secret, prompt, user="42"), indent=2))


if __name__ == "__main__":
    main()
