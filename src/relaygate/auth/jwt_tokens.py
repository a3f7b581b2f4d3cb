"""Short-lived JWTs minted by a site for its browser users.

Each tenant registers issuers: an `iss`, an audience, ONE algorithm (HS256, RS256 or ES256) and
its verification keys by `kid`. A token is looked up by its (unverified) `iss`, then verified
only with that issuer's algorithm and keys: the token's `alg` header is never trusted, `kid` is
only a lookup in the fixed key map, and keys are parsed into typed key objects when the issuer is
loaded, so a public key can never be used as an HMAC secret. `exp`, `iat`, `iss`, `aud`, `sub`
and `jti` are required; a token may live at most 5 minutes and is accepted once (`jti`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from relaygate.auth.failure import AuthFailed
from relaygate.auth.replay import ReplayGuard

Algorithm = Literal["HS256", "RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("HS256", "RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
MAX_LIFETIME_S = 300
MAX_LEEWAY_S = 60
MAX_TOKEN_BYTES = 8192
MIN_HS256_SECRET = 32
MIN_RSA_BITS = 2048
# Key locations (jku, x5u, jwk, x5c) would let the token choose its own key; crit and b64 change
# how the token is read. None of them has a use here.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64"})
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_KEY_MARKERS = (b"-----BEGIN", b"ssh-", b"ecdsa-sha2-", b'{"kty"')


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    """A tenant's issuer with its fixed algorithm and keys parsed by `load_issuer_key`."""

    issuer: str
    audience: str
    algorithm: Algorithm
    keys: Mapping[str, Any]
    tenant_id: str
    environment: str
    issuer_id: str
    max_lifetime_s: int = MAX_LIFETIME_S
    leeway_s: int = 30


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check."""

    issuer: JwtIssuer
    subject: str
    jti: str
    expires_at: float


def _hs256_secret(material: str | bytes) -> bytes:
    secret = material.encode() if isinstance(material, str) else material
    if len(secret) < MIN_HS256_SECRET:
        raise ValueError(f"HS256 secrets must be at least {MIN_HS256_SECRET} bytes")
    if secret.lstrip().startswith(_KEY_MARKERS):
        # A public key used as an HMAC secret lets anyone who has the public key mint tokens.
        raise ValueError("HS256 needs a random shared secret, not a PEM, SSH or JWK key")
    return secret


def load_issuer_key(algorithm: str, material: str | bytes) -> Any:
    """A typed key for `algorithm`, or ValueError saying what is wrong.

    HS256: the secret's bytes (at least 32, and not a key in PEM/SSH/JWK form). RS256: an RSA
    public key PEM of at least 2048 bits. ES256: an EC public key PEM on P-256. Private keys are
    refused: the gateway only verifies, and the site's private key must never leave the site.
    """
    if algorithm == "HS256":
        return _hs256_secret(material)
    if algorithm not in ("RS256", "ES256"):
        raise ValueError(f"unsupported algorithm {algorithm!r}; use HS256, RS256 or ES256")
    pem = material.encode() if isinstance(material, str) else material
    if b"PRIVATE KEY" in pem:
        raise ValueError(
            f"{algorithm} needs the PUBLIC key PEM (-----BEGIN PUBLIC KEY-----);"
            " the private key must stay with the site"
        )
    try:
        key: Any = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{algorithm} keys must be PEM public keys") from None
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RS256 needs an RSA public key of at least {MIN_RSA_BITS} bits")
    elif not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("ES256 needs an EC public key on curve P-256")
    return key


def _key_fits(algorithm: str, key: Any) -> bool:
    if algorithm == "HS256":
        return (
            isinstance(key, bytes)
            and len(key) >= MIN_HS256_SECRET
            and not key.lstrip().startswith(_KEY_MARKERS)
        )
    if algorithm == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def looks_like_jwt(value: str) -> bool:
    """Three base64url segments whose first is a JSON header with an `alg`."""
    if len(value) > MAX_TOKEN_BYTES or not _SHAPE.fullmatch(value):
        return False
    try:
        header = _b64json(value.split(".", 1)[0])
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def _issuer_for(token: str, issuers: Mapping[str, JwtIssuer]) -> tuple[JwtIssuer, Any]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthFailed("malformed token") from None
    if FORBIDDEN_HEADERS & set(header):
        raise AuthFailed("token header names a key location or extension (jku/x5u/jwk/x5c/crit)")
    name = claims.get("iss")
    issuer = issuers.get(name) if isinstance(name, str) else None
    if issuer is None:
        raise AuthFailed("unknown issuer")
    if header.get("alg") != issuer.algorithm:
        raise AuthFailed("token algorithm differs from the issuer's")
    kid = header.get("kid")
    if kid is None:
        if len(issuer.keys) != 1:
            raise AuthFailed("token without kid for an issuer with several keys")
        key = next(iter(issuer.keys.values()))
    else:
        key = issuer.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthFailed("unknown kid")
    if not _key_fits(issuer.algorithm, key):
        raise AuthFailed("issuer key of the wrong type for its algorithm (configuration error)")
    return issuer, key


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def verify_jwt(
    token: str, issuers: Mapping[str, JwtIssuer], *, replay: ReplayGuard, now: float
) -> VerifiedToken:
    """Verify every property above against the clock reading `now`; AuthFailed otherwise."""
    if len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise AuthFailed("token too large or not ASCII")
    issuer, key = _issuer_for(token, issuers)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[issuer.algorithm],
            audience=issuer.audience,
            issuer=issuer.issuer,
            options={
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                # Times are checked below against `now`, with our own leeway rules.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise AuthFailed(f"invalid token ({type(exc).__name__})") from None
    leeway = max(0, min(issuer.leeway_s, MAX_LEEWAY_S))
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
    if not (_number(exp) and _number(iat) and _number(nbf)):
        raise AuthFailed("exp, iat or nbf is not a finite number")
    if now >= exp + leeway:
        raise AuthFailed("expired token")
    if iat > now + leeway:
        raise AuthFailed("token issued in the future")
    if exp - iat > min(issuer.max_lifetime_s, MAX_LIFETIME_S):
        raise AuthFailed("token lifetime above the maximum")
    if nbf > now + leeway:
        raise AuthFailed("token not yet valid")
    subject, jti = claims["sub"], claims["jti"]
    if not isinstance(subject, str) or not subject or not isinstance(jti, str) or not jti:
        raise AuthFailed("sub and jti must be non-empty strings")
    ttl = max(1.0, exp + leeway - now)
    if not await replay.first_use(f"jwt:{issuer.issuer_id}", jti, ttl):
        raise AuthFailed("replayed jti")
    return VerifiedToken(issuer, subject, jti, float(exp))
