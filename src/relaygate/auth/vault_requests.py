"""Checking a signed vault request: the admin key's active secrets (and, for the operator's
keys, the root secret), then, if none matched, which replaced secret it used, to say so."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from relaygate.auth import signing_secrets
from relaygate.auth.failure import AuthFailed
from relaygate.auth.hmac_signing import HEADER_KEY_ID, verify_signed_request
from relaygate.auth.replay import ReplayGuard
from relaygate.auth.signing_secrets import SigningSecretExpired

if TYPE_CHECKING:
    from relaygate.policy.snapshot import KeyPolicy


def secrets_of(key: KeyPolicy | None, root: bytes | None, now: float) -> tuple[bytes, ...]:
    """The secrets a vault request of `key` may be signed with at `now`."""
    if key is None or key.kind != "admin" or key.expired(now):
        return ()
    found = signing_secrets.active(key.vault_secrets, now)
    if root is not None and not key.tenant_id:
        found = (*found, root)
    return found


async def verify_vault_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    *,
    admin_key: Callable[[str], KeyPolicy | None],
    root: bytes | None,
    replay: ReplayGuard,
    now: float,
) -> str:
    """The signing admin key's id; AuthFailed (SigningSecretExpired when the request is signed
    with a secret this key had but that stopped working) otherwise."""
    try:
        return await verify_signed_request(
            headers,
            method,
            path,
            body,
            secrets_for=lambda key_id: secrets_of(admin_key(key_id), root, now),
            replay=replay,
            now=now,
        )
    except AuthFailed as exc:
        if exc.reason != "signature mismatch":
            raise
        key_id = headers.get(HEADER_KEY_ID, "")
        key = admin_key(key_id)
        old = None
        if key is not None:
            old = signing_secrets.expired_match(key.vault_secrets, headers, method, path, body, now)
        if old is None or old.expires_at is None:
            raise
        raise SigningSecretExpired(key_id, old.expires_at) from None
