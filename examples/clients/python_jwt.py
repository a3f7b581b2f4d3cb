#!/usr/bin/env python3
"""Mint a short-lived JWT for one end user and call Relaygate with it.

A site registers itself as a JWT issuer (POST /admin/v1/tenants/{tenant}/jwt-issuers) with one
algorithm and its verification keys by `kid`. Its server then mints, per browser user, a token
that lives at most 5 minutes and is used once (a fresh `jti` each time); the browser sends it as
`Authorization: Bearer <token>`.

HS256 needs only the standard library (`mint_hs256`); RS256/ES256 use PyJWT and the site's
private key (`mint_with_pyjwt`), whose public key is what the gateway was given.

    export RELAYGATE_URL=http://127.0.0.1:8080
    export RELAYGATE_JWT_ISSUER=https://blog.example   # the registered `issuer`
    export RELAYGATE_JWT_AUDIENCE=relaygate            # the registered `audience`
    export RELAYGATE_JWT_KID=k1                        # the key's id in the registration
    export RELAYGATE_JWT_SECRET=...                    # the base64url secret that was registered
    python3 python_jwt.py "Say hello"
    python3 python_jwt.py --print-token   # only print a fresh token (e.g. for curl)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of a base64url string, with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(issuer: str, audience: str, subject: str, lifetime_s: int, now: int | None) -> Any:
    issued = int(time.time()) if now is None else now
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,  # the end user, e.g. the WordPress user id
        "iat": issued,
        "exp": issued + lifetime_s,  # at most 300 s after iat
        "jti": secrets.token_hex(16),  # unique: each token is accepted once
    }


def mint_hs256(
    secret: bytes,
    *,
    issuer: str,
    audience: str,
    subject: str,
    kid: str | None = None,
    lifetime_s: int = 120,
    now: int | None = None,
) -> str:
    """An HS256 token signed with the raw secret bytes (standard library only)."""
    header: dict[str, str] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    claims = _claims(issuer, audience, subject, lifetime_s, now)
    segments = [json.dumps(part, separators=(",", ":")).encode() for part in (header, claims)]
    signing_input = ".".join(b64url(segment) for segment in segments).encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


def mint_with_pyjwt(
    private_key_pem: bytes,
    algorithm: str,
    *,
    issuer: str,
    audience: str,
    subject: str,
    kid: str,
    lifetime_s: int = 120,
    now: int | None = None,
) -> str:
    """An RS256 or ES256 token signed with the site's private key (needs pyjwt[crypto])."""
    import jwt

    claims = _claims(issuer, audience, subject, lifetime_s, now)
    return jwt.encode(claims, private_key_pem, algorithm=algorithm, headers={"kid": kid})


def chat(base_url: str, token: str, prompt: str) -> object:
    """POST /v1/chat/completions with the token; returns the decoded JSON answer."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    if not url.startswith(("http://", "https://")):
        raise ValueError("RELAYGATE_URL must be an http(s) URL")
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": prompt}]})
    request = urllib.request.Request(  # noqa: S310
        url,
        data=body.encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def main() -> None:
    token = mint_hs256(
        b64url_decode(os.environ["RELAYGATE_JWT_SECRET"]),
        issuer=os.environ["RELAYGATE_JWT_ISSUER"],
        audience=os.environ.get("RELAYGATE_JWT_AUDIENCE", "relaygate"),
        subject="42",
        kid=os.environ.get("RELAYGATE_JWT_KID"),
    )
    if sys.argv[1:] == ["--print-token"]:
        print(token)
        return
    base_url = os.environ.get("RELAYGATE_URL", "http://127.0.0.1:8080")
    prompt = " ".join(sys.argv[1:]) or "Say hello"
    print(json.dumps(chat(base_url, token, prompt), indent=2))


if __name__ == "__main__":
    main()
