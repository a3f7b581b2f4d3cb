"""HMAC-signed requests and site JWTs: the happy paths and every rejection, one test each."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
import pytest
import redis.asyncio as redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaygate.auth.failure import PUBLIC_MESSAGE, AuthFailed
from relaygate.auth.hmac_signing import (
    HEADER_KEY_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign_request,
    verify_signed_request,
)
from relaygate.auth.jwt_tokens import JwtIssuer, load_issuer_key, looks_like_jwt, verify_jwt
from relaygate.auth.replay import FallbackReplayGuard, MemoryReplayGuard, RedisReplayGuard
from tests.support.servers import free_port
from tests.support.services import unique_prefix

SECRET = b"s" * 32
KEY_ID = "Kid123abc"
BODY = b'{"model":"fast","messages":[]}'
PATH = "/v1/chat/completions"
NOW = 1_800_000_000.0


def secrets_for(key_id: str) -> Sequence[bytes]:
    return [SECRET] if key_id == KEY_ID else []


def signed(timestamp: float = NOW, secret: bytes = SECRET, **overrides: str) -> dict[str, str]:
    headers = {HEADER_KEY_ID: KEY_ID, **sign_request(secret, "POST", PATH, BODY, int(timestamp))}
    headers.update(overrides)
    return headers


async def verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    replay: MemoryReplayGuard | None = None,
) -> str:
    return await verify_signed_request(
        headers,
        method,
        path,
        body,
        secrets_for=secrets_for,
        replay=replay or MemoryReplayGuard(),
        now=NOW,
    )


# --- HMAC -----------------------------------------------------------------------------------------


async def test_signature_matches_an_independent_computation() -> None:
    canonical = f"POST\n{PATH}\n{int(NOW)}\n{hashlib.sha256(BODY).hexdigest()}".encode()
    expected = hmac.new(SECRET, canonical, hashlib.sha256).hexdigest()
    assert signed()[HEADER_SIGNATURE] == f"v1={expected}"
    assert await verify(signed()) == KEY_ID


@pytest.mark.parametrize("missing", [HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE])
async def test_each_missing_header_is_refused(missing: str) -> None:
    headers = signed()
    del headers[missing]
    with pytest.raises(AuthFailed):
        await verify(headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (HEADER_SIGNATURE, "v1=zz" + "0" * 62),
        (HEADER_SIGNATURE, "v2=" + "0" * 64),
        (HEADER_TIMESTAMP, "soon"),
        (HEADER_TIMESTAMP, "-5"),
        (HEADER_KEY_ID, "x" * 600),
    ],
)
async def test_garbled_headers_are_refused(name: str, value: str) -> None:
    with pytest.raises(AuthFailed):
        await verify(signed(**{name: value}))


async def test_wrong_secret_unknown_key_and_changed_request_are_refused() -> None:
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        (signed(secret=b"t" * 32), {}),
        (signed(**{HEADER_KEY_ID: "other"}), {}),
        (signed(), {"body": BODY + b" "}),
        (signed(), {"path": PATH + "?x=1"}),
        (signed(), {"method": "PUT"}),
    ]
    for headers, changes in cases:
        with pytest.raises(AuthFailed) as excinfo:
            await verify(headers, **changes)
        assert str(excinfo.value) == PUBLIC_MESSAGE


@pytest.mark.parametrize(
    ("offset", "accepted"), [(299, True), (-299, True), (301, False), (-301, False)]
)
async def test_clock_skew_window_is_300_seconds_either_way(offset: int, accepted: bool) -> None:
    headers = signed(timestamp=NOW + offset)
    if accepted:
        assert await verify(headers) == KEY_ID
    else:
        with pytest.raises(AuthFailed, match=PUBLIC_MESSAGE):
            await verify(headers)


async def test_a_replayed_signature_is_refused() -> None:
    guard = MemoryReplayGuard()
    headers = signed()
    assert await verify(headers, replay=guard) == KEY_ID
    with pytest.raises(AuthFailed) as excinfo:
        await verify(headers, replay=guard)
    assert excinfo.value.reason == "replayed signature"


async def test_any_of_several_signatures_may_match_during_rotation() -> None:
    headers = signed()
    headers[HEADER_SIGNATURE] = "v1=" + "0" * 64 + "," + headers[HEADER_SIGNATURE]
    assert await verify(headers) == KEY_ID


# --- JWT ------------------------------------------------------------------------------------------


def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
HS_SECRET = secrets.token_bytes(32)


def issuer(algorithm: str = "HS256", keys: dict[str, Any] | None = None) -> JwtIssuer:
    material = {"HS256": HS_SECRET, "RS256": _pem_public(RSA_KEY), "ES256": _pem_public(EC_KEY)}
    return JwtIssuer(
        issuer="https://site.example",
        audience="relaygate",
        algorithm=algorithm,  # type: ignore[arg-type]
        keys=keys or {"k1": load_issuer_key(algorithm, material[algorithm])},
        tenant_id="acme",
        environment="production",
        issuer_id="iss1",
    )


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": "https://site.example",
        "aud": "relaygate",
        "sub": "wp-42",
        "iat": int(NOW),
        "exp": int(NOW) + 120,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    algorithm: str = "HS256", key: Any = None, headers: dict[str, Any] | None = None, **c: Any
) -> str:
    signing = key or {"HS256": HS_SECRET, "RS256": RSA_KEY, "ES256": EC_KEY}[algorithm]
    return jwt.encode(
        claims(**c), signing, algorithm=algorithm, headers={"kid": "k1", **(headers or {})}
    )


async def check(
    raw: str, who: JwtIssuer | None = None, guard: MemoryReplayGuard | None = None
) -> Any:
    chosen = who or issuer()
    return await verify_jwt(
        raw, {chosen.issuer: chosen}, replay=guard or MemoryReplayGuard(), now=NOW
    )


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
async def test_valid_tokens_of_each_algorithm(algorithm: str) -> None:
    raw = token(algorithm)
    assert looks_like_jwt(raw)
    verified = await check(raw, issuer(algorithm))
    assert (verified.subject, verified.issuer.tenant_id) == ("wp-42", "acme")


async def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    with pytest.raises(AuthFailed):
        await check(unsigned)


async def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    # The classic confusion attack: an RS256 issuer, a token "signed" with HMAC over its public PEM.
    # PyJWT refuses to HMAC with a PEM, so craft the signature by hand.
    import base64
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(_pem_public(RSA_KEY), f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(AuthFailed):
        await check(f"{head}.{body}.{b64(mac)}", issuer("RS256"))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti"])
async def test_each_required_claim_is_required(claim: str) -> None:
    with pytest.raises(AuthFailed):
        await check(token(**{claim: None}))


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"iss": "https://other.example"},
        {"exp": int(NOW) - 31, "iat": int(NOW) - 200},
        {"iat": int(NOW), "exp": int(NOW) + 301},
        {"iat": int(NOW) + 120, "exp": int(NOW) + 200},
    ],
    ids=["audience", "issuer", "expired", "lifetime-301s", "issued-in-future"],
)
async def test_wrong_claims_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(AuthFailed):
        await check(token(**changes))


async def test_kid_is_only_a_lookup_in_the_issuers_keys() -> None:
    with pytest.raises(AuthFailed):
        await check(token(headers={"kid": "k9"}))
    two_keys = issuer(keys={"a": HS_SECRET, "b": secrets.token_bytes(32)})
    no_kid = jwt.encode(claims(), HS_SECRET, algorithm="HS256")
    with pytest.raises(AuthFailed):
        await check(no_kid, two_keys)
    one_key = issuer(keys={"only": HS_SECRET})
    assert (await check(no_kid, one_key)).subject == "wp-42"


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_key_location_headers_are_refused(header: str) -> None:
    with pytest.raises(AuthFailed):
        await check(token(headers={header: "https://evil.example/keys"}))


async def test_a_replayed_jti_and_an_oversized_token_are_refused() -> None:
    guard = MemoryReplayGuard()
    raw = token()
    await check(raw, guard=guard)
    with pytest.raises(AuthFailed, match=PUBLIC_MESSAGE):
        await check(raw, guard=guard)
    with pytest.raises(AuthFailed):
        await check(token(sub="x" * 9000))


def test_issuer_keys_are_validated_when_loaded() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        load_issuer_key("HS256", b"short")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        load_issuer_key("RS256", _pem_public(small))
    with pytest.raises(ValueError, match="P-256"):
        load_issuer_key("ES256", _pem_public(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ValueError):
        load_issuer_key("ES256", _pem_public(RSA_KEY))
    private_pem = RSA_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert isinstance(load_issuer_key("RS256", private_pem), rsa.RSAPublicKey)


# --- replay guards --------------------------------------------------------------------------------


async def test_memory_guard_forgets_after_the_ttl() -> None:
    now = [0.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    assert await guard.first_use("ns", "n1", 10)
    assert not await guard.first_use("ns", "n1", 10)
    assert await guard.first_use("other", "n1", 10)
    now[0] = 11
    assert await guard.first_use("ns", "n1", 10)


async def test_redis_guard_is_shared_between_replicas(redis_url: str) -> None:
    prefix = unique_prefix()
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        one, two = (RedisReplayGuard(c, prefix) for c in clients)
        assert await one.first_use("hmac", "sig", 5)
        assert not await two.first_use("hmac", "sig", 5)
        assert await two.first_use("hmac", "short", 0.1)
        await asyncio.sleep(0.2)
        assert await one.first_use("hmac", "short", 0.1)
    finally:
        for client in clients:
            await client.aclose()


async def test_unreachable_redis_falls_back_to_local_memory() -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        guard = FallbackReplayGuard(RedisReplayGuard(dead, "x:"), MemoryReplayGuard())
        assert await guard.first_use("hmac", "sig", 5)
        assert not await guard.first_use("hmac", "sig", 5)
        assert not guard.healthy
        assert guard.attempts == 1
    finally:
        await dead.aclose()
