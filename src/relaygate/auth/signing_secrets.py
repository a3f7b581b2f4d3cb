"""An admin key's vault signing secrets: the current one, the ones still inside their overlap
after a rotation, and the ones replaced recently (kept only to explain a refusal).

A new secret is issued only to a request signed with a secret the key already has (or, for its
first one, by the operator): a leaked bearer key alone can neither obtain nor replace one. The
previous secret keeps working until the overlap the rotation chose ends; a request signed with a
secret past its end is told so (`signing_secret_expired`), not given a bare 401. The operator's
keys have a root secret besides, set on every replica in `RELAYGATE_ADMIN_SIGNING_SECRET`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import orjson

from relaygate.auth.failure import AuthFailed
from relaygate.auth.hmac_signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, canonical_request

ROOT_ENV = "RELAYGATE_ADMIN_SIGNING_SECRET"
MIN_ROOT_LENGTH = 32
# A replaced secret is remembered (sealed) this long after it stops working, so that a client
# still signing with it learns that it was replaced rather than getting a bare 401.
REMEMBER_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """One secret of a key. `expires_at` None: the current one; else it signs until then."""

    secret: bytes
    issued_at: float
    expires_at: float | None = None

    def active(self, now: float) -> bool:
        """Whether requests signed with it are accepted at `now`."""
        return self.expires_at is None or now < self.expires_at


class SigningSecretExpired(AuthFailed):
    """The request is signed with a secret of this key that was replaced and has expired."""

    def __init__(self, key_id: str, expired_at: float) -> None:
        super().__init__("signed with a replaced signing secret")
        self.key_id = key_id
        self.expired_at = expired_at


def parse(opened: bytes) -> tuple[SigningSecret, ...]:
    """The entries stored for a key (a bare secret, the format before rotation: current)."""
    if not opened.startswith(b"["):
        return (SigningSecret(opened, 0.0),)
    return tuple(
        SigningSecret(
            str(entry["secret"]).encode(),
            float(entry["issued_at"]),
            None if entry.get("expires_at") is None else float(entry["expires_at"]),
        )
        for entry in orjson.loads(opened)
    )


def dump(entries: Sequence[SigningSecret]) -> bytes:
    """The bytes to seal for `entries`."""
    return orjson.dumps(
        [
            {"secret": e.secret.decode(), "issued_at": e.issued_at, "expires_at": e.expires_at}
            for e in entries
        ]
    )


def rotate(
    entries: Sequence[SigningSecret], new: bytes, now: float, overlap_s: float
) -> tuple[SigningSecret, ...]:
    """`new` becomes the current secret; the others sign for at most `overlap_s` more seconds;
    expired ones are remembered for REMEMBER_S, then dropped."""
    until = now + overlap_s
    kept = []
    for entry in entries:
        if entry.expires_at is None or entry.expires_at > until:
            entry = replace(entry, expires_at=until)
        if entry.expires_at is not None and entry.expires_at + REMEMBER_S > now:
            kept.append(entry)
    return (*kept, SigningSecret(new, now))


def active(entries: Sequence[SigningSecret], now: float) -> tuple[bytes, ...]:
    """The secrets accepted at `now`."""
    return tuple(e.secret for e in entries if e.active(now))


def expired_match(
    entries: Sequence[SigningSecret],
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float,
) -> SigningSecret | None:
    """The expired secret this request is signed with, if any (after the check with the active
    ones failed: this only picks the explanation, it never lets a request in)."""
    stamp = headers.get(HEADER_TIMESTAMP, "")
    offered = [
        part.strip().partition("=")[2]
        for part in headers.get(HEADER_SIGNATURE, "").split(",")
        if part.strip().startswith("v1=")
    ]
    message = canonical_request(method, path, stamp, body)
    for entry in entries:
        if entry.active(now):
            continue
        expected = hmac.new(entry.secret, message, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return entry
    return None


def new_secret_text() -> str:
    """A fresh secret: base64url of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def root_secret(environ: Mapping[str, str]) -> bytes | None:
    """The operator's root secret from the environment; ValueError if it is too short."""
    value = environ.get(ROOT_ENV, "")
    if not value:
        return None
    if len(value) < MIN_ROOT_LENGTH:
        raise ValueError(f"{ROOT_ENV} must be at least {MIN_ROOT_LENGTH} characters long")
    return value.encode()
