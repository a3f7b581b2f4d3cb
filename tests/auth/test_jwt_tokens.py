"""Site JWTs: valid tokens of each algorithm, and every rejection, one test each."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaygate.auth.failure import AuthFailed
from relaygate.auth.jwt_tokens import (
    JwtIssuer,
    VerifiedToken,
    load_issuer_key,
    looks_like_jwt,
    verify_jwt,
)
from relaygate.auth.replay import MemoryReplayGuard
from tests.auth.material import (
    EC_KEY,
    HS_SECRET,
    NOW,
    RSA_KEY,
    b64json,
    b64url,
    public_failure,
    public_pem,
)

ISS = "https://blog.example"
SIGNING = {"HS256": HS_SECRET, "RS256": RSA_KEY, "ES256": EC_KEY}
VERIFYING = {"HS256": HS_SECRET, "RS256": public_pem(RSA_KEY), "ES256": public_pem(EC_KEY)}


def issuer(algorithm: str = "HS256", **changes: Any) -> JwtIssuer:
    base = JwtIssuer(
        issuer=ISS,
        audience="relaygate",
        algorithm=algorithm,  # type: ignore[arg-type]
        keys={"k1": load_issuer_key(algorithm, VERIFYING[algorithm])},
        tenant_id="acme-blog",
        environment="production",
        issuer_id="iss1",
    )
    return replace(base, **changes)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": "relaygate",
        "sub": "wp-42",
        "iat": int(NOW),
        "exp": int(NOW) + 120,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    algorithm: str = "HS256", *, key: Any = None, headers: dict[str, Any] | None = None, **c: Any
) -> str:
    signing: Any = SIGNING[algorithm] if key is None else key
    return jwt.encode(
        claims(**c), signing, algorithm=algorithm, headers={"kid": "k1", **(headers or {})}
    )


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256-style token built without PyJWT (which refuses some of these on purpose)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


async def check(
    raw: str, who: JwtIssuer | None = None, guard: MemoryReplayGuard | None = None
) -> VerifiedToken:
    chosen = issuer() if who is None else who
    return await verify_jwt(
        raw,
        {chosen.issuer: chosen},
        replay=MemoryReplayGuard() if guard is None else guard,
        now=NOW,
    )


async def refused(raw: str, who: JwtIssuer | None = None, **kw: Any) -> str:
    with pytest.raises(AuthFailed) as excinfo:
        await check(raw, who, **kw)
    return public_failure(excinfo.value)


# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
async def test_a_valid_token_of_each_algorithm_is_accepted(algorithm: str) -> None:
    raw = token(algorithm, jti="j-1")
    verified = await check(raw, issuer(algorithm))
    assert verified.subject == "wp-42"
    assert verified.jti == "j-1"
    assert verified.expires_at == NOW + 120
    assert (verified.issuer.tenant_id, verified.issuer.algorithm) == ("acme-blog", algorithm)


async def test_a_token_without_kid_is_accepted_when_the_issuer_has_one_key() -> None:
    raw = jwt.encode(claims(), HS_SECRET, algorithm="HS256")
    assert (await check(raw)).subject == "wp-42"


async def test_the_kid_picks_one_of_several_keys() -> None:
    second = secrets.token_bytes(32)
    who = issuer(keys={"k1": HS_SECRET, "k2": second})
    assert (await check(token(key=second, headers={"kid": "k2"}), who)).subject == "wp-42"


async def test_an_expiry_just_past_is_accepted_within_the_leeway() -> None:
    assert await check(token(iat=int(NOW) - 100, exp=int(NOW) - 29))


async def test_a_lifetime_of_exactly_300_seconds_is_accepted() -> None:
    assert await check(token(iat=int(NOW) - 10, exp=int(NOW) + 290))


async def test_an_iat_slightly_ahead_is_accepted_within_the_leeway() -> None:
    assert await check(token(iat=int(NOW) + 20, exp=int(NOW) + 200))


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(token())
    assert looks_like_jwt(f"{b64json({'alg': 'none'})}.{b64json(claims())}.")
    assert not looks_like_jwt("rg_live_Abc123xyz_" + "a" * 43)
    assert not looks_like_jwt("a.b.c")
    assert not looks_like_jwt(f"{b64json({'typ': 'JWT'})}.{b64json(claims())}.sig")
    assert not looks_like_jwt(f"{b64json({'alg': 'HS256'})}.x y.sig")
    assert not looks_like_jwt(token() + "." + "x")


# --- refused: algorithm and keys ---------------------------------------------------------------


async def test_alg_none_is_refused() -> None:
    unsigned = f"{b64json({'alg': 'none', 'kid': 'k1'})}.{b64json(claims())}."
    assert await refused(unsigned) == "token algorithm differs from the issuer's"


async def test_hs256_signed_with_the_rsa_public_key_pem_as_secret_is_refused() -> None:
    forged = hand_made({"alg": "HS256", "kid": "k1"}, claims(), public_pem(RSA_KEY))
    reason = await refused(forged, issuer("RS256"))
    assert reason == "token algorithm differs from the issuer's"


async def test_a_valid_signature_of_another_algorithm_is_refused() -> None:
    # A real RS256 token for an issuer registered as ES256 with... the same kid.
    assert await refused(token("RS256"), issuer("ES256")) == (
        "token algorithm differs from the issuer's"
    )


async def test_a_public_key_in_an_hs256_issuer_is_never_used_as_a_secret() -> None:
    # An issuer configured without load_issuer_key: the wrong key type is refused, not tried.
    pem = public_pem(RSA_KEY)
    who = issuer(keys={"k1": pem})
    forged = hand_made({"alg": "HS256", "kid": "k1"}, claims(), pem)
    assert await refused(forged, who) == (
        "issuer key of the wrong type for its algorithm (configuration error)"
    )


async def test_an_hmac_secret_in_an_rs256_issuer_is_refused() -> None:
    who = issuer("RS256", keys={"k1": HS_SECRET})
    assert await refused(token("RS256"), who) == (
        "issuer key of the wrong type for its algorithm (configuration error)"
    )


async def test_a_tampered_payload_is_refused() -> None:
    head, _, sig = token().split(".")
    forged = f"{head}.{b64json(claims(sub='wp-1'))}.{sig}"
    assert await refused(forged) == "invalid token (InvalidSignatureError)"


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
async def test_a_token_signed_with_another_key_is_refused(algorithm: str) -> None:
    other = {
        "HS256": secrets.token_bytes(32),
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }[algorithm]
    reason = await refused(token(algorithm, key=other), issuer(algorithm))
    assert reason == "invalid token (InvalidSignatureError)"


async def test_an_unknown_kid_is_refused() -> None:
    assert await refused(token(headers={"kid": "k9"})) == "unknown kid"


async def test_a_kid_that_is_not_a_string_is_refused() -> None:
    forged = hand_made({"alg": "HS256", "kid": 1}, claims(), HS_SECRET)
    assert await refused(forged) in {"malformed token", "unknown kid"}


async def test_a_missing_kid_is_refused_when_the_issuer_has_two_keys() -> None:
    who = issuer(keys={"a": HS_SECRET, "b": secrets.token_bytes(32)})
    raw = jwt.encode(claims(), HS_SECRET, algorithm="HS256")
    assert await refused(raw, who) == "token without kid for an issuer with several keys"


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_a_header_naming_a_key_location_is_refused(header: str) -> None:
    value: Any = (
        {"kty": "oct", "k": b64url(HS_SECRET)} if header == "jwk" else "https://evil.example/k"
    )
    forged = hand_made({"alg": "HS256", "kid": "k1", header: value}, claims(), HS_SECRET)
    reason = await refused(forged)
    assert reason == "token header names a key location or extension (jku/x5u/jwk/x5c/crit)"


@pytest.mark.parametrize(
    "extension", [{"crit": ["b64"], "b64": True}, {"b64": True}], ids=["crit", "b64"]
)
async def test_a_header_with_critical_extensions_is_refused(extension: dict[str, Any]) -> None:
    forged = hand_made({"alg": "HS256", "kid": "k1", **extension}, claims(), HS_SECRET)
    assert await refused(forged) in {
        "token header names a key location or extension (jku/x5u/jwk/x5c/crit)",
        "malformed token",
    }


# --- refused: claims ---------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "sub", "jti"])
async def test_a_missing_required_claim_is_refused(claim: str) -> None:
    reason = await refused(token(**{claim: None}))  # type: ignore[arg-type]
    assert reason == "invalid token (MissingRequiredClaimError)"


async def test_a_missing_iss_is_refused() -> None:
    # The issuer is found by `iss`, so without it there is no issuer to verify with.
    assert await refused(token(iss=None)) == "unknown issuer"


async def test_a_wrong_audience_is_refused() -> None:
    assert await refused(token(aud="someone-else")) == "invalid token (InvalidAudienceError)"


async def test_an_audience_list_is_refused_even_if_it_contains_ours() -> None:
    reason = await refused(token(aud=["relaygate", "other"]))
    assert reason == "invalid token (InvalidAudienceError)"


async def test_an_unknown_issuer_is_refused() -> None:
    assert await refused(token(iss="https://other.example")) == "unknown issuer"


async def test_an_expired_token_is_refused() -> None:
    assert await refused(token(iat=int(NOW) - 200, exp=int(NOW) - 31)) == "expired token"


async def test_a_lifetime_of_301_seconds_is_refused() -> None:
    reason = await refused(token(iat=int(NOW), exp=int(NOW) + 301))
    assert reason == "token lifetime above the maximum"


async def test_an_issuer_cannot_raise_the_lifetime_above_300_seconds() -> None:
    reason = await refused(token(exp=int(NOW) + 301), issuer(max_lifetime_s=3600))
    assert reason == "token lifetime above the maximum"


async def test_an_issuer_cannot_raise_the_leeway_above_60_seconds() -> None:
    raw = token(iat=int(NOW) - 200, exp=int(NOW) - 61)
    assert await refused(raw, issuer(leeway_s=3600)) == "expired token"


async def test_an_iat_in_the_future_is_refused() -> None:
    reason = await refused(token(iat=int(NOW) + 31, exp=int(NOW) + 200))
    assert reason == "token issued in the future"


async def test_an_nbf_in_the_future_is_refused() -> None:
    assert await refused(token(nbf=int(NOW) + 60)) == "token not yet valid"


@pytest.mark.parametrize(
    "changes",
    [{"exp": "soon"}, {"iat": True}, {"exp": float("nan")}, {"nbf": "later"}],
    ids=["exp-string", "iat-bool", "exp-nan", "nbf-string"],
)
async def test_times_that_are_not_finite_numbers_are_refused(changes: dict[str, Any]) -> None:
    forged = hand_made({"alg": "HS256", "kid": "k1"}, claims(**changes), HS_SECRET)
    assert await refused(forged) in {
        "exp, iat or nbf is not a finite number",
        "invalid token (DecodeError)",
    }


async def test_an_empty_subject_is_refused() -> None:
    assert await refused(token(sub="")) == "sub and jti must be non-empty strings"


# --- refused: replay and size ------------------------------------------------------------------


async def test_a_replayed_jti_is_refused() -> None:
    guard = MemoryReplayGuard()
    raw = token()
    assert await check(raw, guard=guard)
    assert await refused(raw, guard=guard) == "replayed jti"


async def test_a_new_token_reusing_a_jti_is_refused() -> None:
    guard = MemoryReplayGuard()
    assert await check(token(jti="same"), guard=guard)
    assert await refused(token(jti="same", sub="wp-7"), guard=guard) == "replayed jti"


async def test_jti_namespaces_are_per_issuer() -> None:
    guard = MemoryReplayGuard()
    other = issuer(issuer="https://shop.example", issuer_id="iss2")
    assert await check(token(jti="same"), guard=guard)
    assert await check(token(jti="same", iss="https://shop.example"), other, guard=guard)


async def test_a_jti_is_remembered_until_exp_plus_leeway() -> None:
    clock = [0.0]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    raw = token(exp=int(NOW) + 120)  # remembered for 120 + 30 s
    assert await check(raw, guard=guard)
    clock[0] = 149.0
    assert await refused(raw, guard=guard) == "replayed jti"
    clock[0] = 151.0
    assert await check(raw, guard=guard)


async def test_a_token_over_8_kb_is_refused() -> None:
    assert await refused(token(sub="x" * 9000)) == "token too large or not ASCII"


async def test_a_non_ascii_token_is_refused() -> None:
    assert await refused(token() + "\u00e9") == "token too large or not ASCII"


async def test_garbage_is_refused() -> None:
    assert await refused("not.a.token") == "malformed token"


async def test_the_failure_text_never_contains_the_token() -> None:
    raw = token(aud="someone-else")
    with pytest.raises(AuthFailed) as excinfo:
        await check(raw)
    shown = f"{excinfo.value} {excinfo.value!r} {excinfo.value.reason}"
    for part in raw.split("."):
        assert part not in shown
    assert json.dumps(claims()["iss"]) not in shown
