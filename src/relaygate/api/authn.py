"""Authenticate a data-plane request: bearer / `api-key` keys, HMAC-signed requests, site JWTs.

Every failure is the same 401 (or 403 for a valid key on the wrong plane): the caller never
learns which part was wrong. The reason goes to the log, without any secret.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request

from relaygate.auth.credentials import presented_key, signed_path, unauthorized
from relaygate.auth.failure import AuthFailed
from relaygate.auth.hmac_signing import is_signed, verify_signed_request
from relaygate.auth.jwt_tokens import looks_like_jwt, verify_jwt
from relaygate.errors import GatewayError
from relaygate.jobs.inprocess import PRINCIPAL_STATE
from relaygate.policy.principal import AuthMethod, Principal
from relaygate.policy.snapshot import KeyPolicy, PolicySnapshot
from relaygate.state import Gateway
from relaygate.vault.scope import RequestScope, set_scope

log = logging.getLogger("relaygate.auth")


def _of_key(snapshot: PolicySnapshot, key: KeyPolicy, via: AuthMethod) -> Principal:
    """The principal of an active key, made once per policy snapshot (policy/memo.py)."""
    return snapshot.principals.get((key.key_id, via), lambda: Principal.of_key(key, via))


async def _principal(request: Request, gw: Gateway, body: bytes) -> Principal:
    snapshot = gw.policy
    now = time.time()
    if is_signed(request.headers):
        key_id = await verify_signed_request(
            request.headers,
            request.method,
            signed_path(request.scope),
            body,
            secrets_for=snapshot.signing_secrets,
            replay=gw.replay,
            now=now,
        )
        key = snapshot.keys_by_id.get(key_id)
        if key is None:
            raise AuthFailed("signed by a key that is no longer active")
        principal = _of_key(snapshot, key, "hmac")
    else:
        presented = presented_key(request.headers)
        if presented is None:
            raise AuthFailed("no credentials")
        if looks_like_jwt(presented):
            token = await verify_jwt(presented, snapshot.issuers, replay=gw.replay, now=now)
            issuer = token.issuer
            return Principal(
                key_id=f"jwt:{issuer.issuer_id}",
                tenant_id=issuer.tenant_id,
                environment=issuer.environment,
                via="jwt",
                end_user=token.subject,
            )
        found = snapshot.key_for(presented)
        if found is None:
            raise AuthFailed("unknown or revoked key")
        if found.require_signature and found.kind == "tenant":
            raise AuthFailed("this key only accepts signed requests")
        principal = _of_key(snapshot, found, "bearer")
    assert principal.key is not None
    if principal.key.expired(now):
        raise AuthFailed("expired key")
    return principal


async def authenticate(request: Request, gw: Gateway, body: bytes = b"") -> Principal:
    """The data-plane caller, or the generic 401; admin keys get 403 here.

    A background job runs as the principal that created it, placed in the request scope by the
    job runner (scope state is not reachable from HTTP)."""
    state = request.scope.get("state") or {}
    job_principal = state.get(PRINCIPAL_STATE)
    if isinstance(job_principal, Principal):
        principal = job_principal
    else:
        try:
            principal = await _principal(request, gw, body)
        except AuthFailed as exc:
            log.info("authentication failed: %s", exc.reason)
            raise unauthorized() from None
    if principal.kind != "tenant":
        raise GatewayError(403, "this key may not use this endpoint", code="forbidden")
    # Provider credentials held in the vault are resolved in this scope (least privilege).
    set_scope(
        RequestScope(
            principal.tenant_id,
            principal.environment,
            principal.key_id,
            str(state.get("request_id", "")),
        )
    )
    return principal
