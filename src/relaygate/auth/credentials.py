"""Where credentials are read from, and the one answer to bad ones (both planes)."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.auth.failure import PUBLIC_MESSAGE
from relaygate.errors import GatewayError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The `Authorization: Bearer` token or the `api-key` header, if any.

    When an `Authorization` header is present it is the one used, and it must be Bearer.
    """
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return headers.get("api-key") or None


def unauthorized() -> GatewayError:
    """The one 401 for missing, unknown, revoked, expired or wrong-plane credentials."""
    return GatewayError(
        401, PUBLIC_MESSAGE, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


def signed_path(scope: Mapping[str, object]) -> str:
    """The path and query exactly as sent, the form HMAC signatures cover."""
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    query = scope.get("query_string") or b""
    assert isinstance(query, bytes)
    return f"{path}?{query.decode('latin-1')}" if query else path
