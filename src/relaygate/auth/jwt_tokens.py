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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from relaygate.auth.failure import AuthFailed
from relaygate.auth.replay import ReplayGuard

Algorithm = Literal["HS256", "RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("HS256", "RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
MAX_LIFETIME_S = 300
MAX_LEEWAY_S = 60
MAX_TOKEN_BYTES = 8192
MIN_HS256_SECRET = 32
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    """A tenant's issuer with its fixed algorithm and parsed keys."""

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


def load_issuer_key(algorithm: str, material: str | bytes) -> Any:
    """A typed key for `algorithm`: HS256 secret bytes (>= 32), RSA-2048+ or P-256 public key.

    A private key PEM is accepted for RS256/ES256 and reduced to its public key.
    """
    if algorithm == "HS256":
        secret = material.encode() if isinstance(material, str) else material
        if len(secret) < MIN_HS256_SECRET:
            raise ValueError(f"HS256 secrets must be at least {MIN_HS256_SECRET} bytes")
        return secret
    if algorithm not in ("RS256", "ES256"):
        raise ValueError(f"unsupported algorithm {algorithm!r}; use HS256, RS256 or ES256")
    pem = material.encode() if isinstance(material, str) else material
    try:
        key: Any = load_pem_public_key(pem)
    except ValueError:
        try:
            key = load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError):
            raise ValueError(f"{algorithm} keys must be PEM public keys") from None
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            raise ValueError("RS256 needs an RSA public key of at least 2048 bits")
    elif not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("ES256 needs an EC public key on curve P-256")
    return key


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def looks_like_jwt(value: str) -> bool:
    """Three base64url segments whose first is a JSON header with an `alg`."""
    if value.count(".") != 2 or len(value) > MAX_TOKEN_BYTES:
        return False
    try:
        header = _b64json(value.split(".", 1)[0])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def _issuer_for(token: str, issuers: Mapping[str, JwtIssuer]) -> tuple[JwtIssuer, Any]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthFailed("malformed token") from None
    if FORBIDDEN_HEADERS & set(header):
        raise AuthFailed("token header names a key location (jku/x5u/jwk/x5c)")
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
        return issuer, next(iter(issuer.keys.values()))
    key = issuer.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise AuthFailed("unknown kid")
    return issuer, key


async def verify_jwt(
    token: str, issuers: Mapping[str, JwtIssuer], *, replay: ReplayGuard, now: float
) -> VerifiedToken:
    """Verify every property above; AuthFailed (with an internal reason) otherwise."""
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthFailed("token too large")
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
    leeway = min(issuer.leeway_s, MAX_LEEWAY_S)
    exp, iat = claims["exp"], claims["iat"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
        raise AuthFailed("exp/iat are not numbers")
    if now > exp + leeway:
        raise AuthFailed("expired token")
    if iat > now + leeway:
        raise AuthFailed("token issued in the future")
    if exp - iat > min(issuer.max_lifetime_s, MAX_LIFETIME_S):
        raise AuthFailed("token lifetime above the maximum")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + leeway:
        raise AuthFailed("token not yet valid")
    subject, jti = claims["sub"], claims["jti"]
    if not isinstance(subject, str) or not subject or not isinstance(jti, str) or not jti:
        raise AuthFailed("sub and jti must be non-empty strings")
    ttl = max(1.0, exp + leeway - now)
    if not await replay.first_use(f"jwt:{issuer.issuer_id}", jti, ttl):
        raise AuthFailed("replayed jti")
    return VerifiedToken(issuer, subject, jti, float(exp))
