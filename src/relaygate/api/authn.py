"""Authenticate a data-plane request from its `Authorization: Bearer` or `api-key` header."""

from __future__ import annotations

from starlette.requests import Request

from relaygate.auth.keyring import Keyring, Principal
from relaygate.errors import GatewayError

_UNAUTHORIZED = "invalid or missing API key"


def presented_key(request: Request) -> str | None:
    """The key the caller presented, if any."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return request.headers.get("api-key") or None


def authenticate(request: Request, keyring: Keyring, *, admin: bool = False) -> Principal:
    """The caller's principal, or a 401 that never says which part was wrong."""
    key = presented_key(request)
    principal = keyring.authenticate(key) if key else None
    if principal is None:
        raise GatewayError(
            401, _UNAUTHORIZED, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
    if (principal.kind == "admin") != admin:
        raise GatewayError(403, "this key may not use this endpoint", code="forbidden")
    return principal
