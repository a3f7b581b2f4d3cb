"""HMAC-signed requests: the happy paths and every rejection, one test each."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import pytest

from relaygate.auth.failure import AuthFailed
from relaygate.auth.hmac_signing import (
    HEADER_KEY_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    canonical_request,
    is_signed,
    sign_request,
    verify_signed_request,
)
from relaygate.auth.replay import MemoryReplayGuard
from tests.auth.material import NOW, public_failure

SECRET = b"wordpress-site-signing-secret-0123456789"
NEW_SECRET = b"the-rotated-signing-secret-abcdefghijklmno"
KEY_ID = "Kid123abc"
BODY = b'{"model":"fast","messages":[{"role":"user","content":"hi"}]}'
PATH = "/v1/chat/completions"


def secrets_for(key_id: str) -> Sequence[bytes]:
    return [SECRET] if key_id == KEY_ID else []


def signed(
    changed: dict[str, str] | None = None, *, timestamp: float = NOW, secret: bytes = SECRET
) -> dict[str, str]:
    headers = sign_request(secret, "POST", PATH, BODY, int(timestamp), key_id=KEY_ID)
    headers.update(changed or {})
    return headers


async def verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    replay: MemoryReplayGuard | None = None,
    secrets: Sequence[bytes] | None = None,
) -> str:
    return await verify_signed_request(
        headers,
        method,
        path,
        body,
        secrets_for=secrets_for if secrets is None else (lambda key_id: secrets),
        replay=MemoryReplayGuard() if replay is None else replay,
        now=NOW,
    )


async def refused(headers: dict[str, str], **changes: object) -> str:
    """The internal reason a request is refused (its public message is always the generic one)."""
    with pytest.raises(AuthFailed) as excinfo:
        await verify(headers, **changes)  # type: ignore[arg-type]
    return public_failure(excinfo.value)


# --- accepted ----------------------------------------------------------------------------------


async def test_a_correctly_signed_request_is_accepted() -> None:
    assert await verify(signed()) == KEY_ID


def test_signature_matches_an_independent_computation_of_the_documented_string() -> None:
    path = "/v1/chat/completions?api-version=2024-10-21&x=%2F"
    canonical = f"POST\n{path}\n1800000000\n{hashlib.sha256(BODY).hexdigest()}".encode()
    expected = hmac.new(SECRET, canonical, hashlib.sha256).hexdigest()
    headers = sign_request(SECRET, "post", path, BODY, 1_800_000_000, key_id=KEY_ID)
    assert headers == {
        HEADER_KEY_ID: KEY_ID,
        HEADER_TIMESTAMP: "1800000000",
        HEADER_SIGNATURE: f"v1={expected}",
    }


def test_canonical_string_of_an_empty_get_uses_the_sha256_of_no_bytes() -> None:
    assert canonical_request("get", "/v1/models", "1800000000", b"") == (
        b"GET\n/v1/models\n1800000000\n"
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_a_text_secret_is_used_as_its_utf8_bytes() -> None:
    assert sign_request(SECRET.decode(), "POST", PATH, BODY, 1) == sign_request(
        SECRET, "POST", PATH, BODY, 1
    )


@pytest.mark.parametrize("offset", [-300, -299, 299, 300])
async def test_timestamps_within_300_seconds_either_way_are_accepted(offset: int) -> None:
    assert await verify(signed(timestamp=NOW + offset)) == KEY_ID


async def test_after_a_rotation_a_signature_with_the_second_secret_is_accepted() -> None:
    headers = signed(secret=NEW_SECRET)
    assert await verify(headers, secrets=[SECRET, NEW_SECRET]) == KEY_ID


async def test_any_of_several_offered_signatures_may_match() -> None:
    old = signed()[HEADER_SIGNATURE]
    new = signed(secret=NEW_SECRET)[HEADER_SIGNATURE]
    headers = signed({HEADER_SIGNATURE: f"{new}, {old}"})
    assert await verify(headers) == KEY_ID


def test_is_signed_when_any_signature_header_is_present() -> None:
    assert not is_signed({"authorization": "Bearer x"})
    for name in (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE):
        assert is_signed({name: "x"})


# --- refused: headers --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE])
async def test_a_missing_header_is_refused(missing: str) -> None:
    headers = signed()
    del headers[missing]
    assert await refused(headers) == "signed request without all three signature headers"


@pytest.mark.parametrize("empty", [HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE])
async def test_an_empty_header_is_refused(empty: str) -> None:
    reason = await refused(signed({empty: ""}))
    assert reason == "signed request without all three signature headers"


@pytest.mark.parametrize(
    "value",
    [
        "v1=zz" + "0" * 62,  # not hex
        "v1=" + "0" * 63,  # too short
        "v1=" + "A" * 64,  # upper-case hex
        "v2=" + "0" * 64,  # unknown version
        "0" * 64,  # no version
    ],
    ids=["not-hex", "short", "uppercase", "v2", "no-version"],
)
async def test_a_garbled_signature_is_refused(value: str) -> None:
    assert await refused(signed({HEADER_SIGNATURE: value})) == "malformed signature"


@pytest.mark.parametrize(
    "stamp",
    ["soon", "1800000000.5", "-5", "+1800000000", " 1800000000", "\u00b2", "1" * 13],
    ids=["word", "fraction", "negative", "plus", "space", "superscript-digit", "13-digits"],
)
async def test_a_non_integer_or_out_of_range_timestamp_is_refused(stamp: str) -> None:
    assert await refused(signed({HEADER_TIMESTAMP: stamp})) == "malformed timestamp"


@pytest.mark.parametrize("name", [HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE])
async def test_an_absurdly_long_header_is_refused(name: str) -> None:
    assert await refused(signed({name: "1" * 100_000})) == "oversized signature header"


# --- refused: time and identity ----------------------------------------------------------------


@pytest.mark.parametrize("offset", [301, -301], ids=["future", "past"])
async def test_a_timestamp_more_than_300_seconds_off_is_refused(offset: int) -> None:
    reason = await refused(signed(timestamp=NOW + offset))
    assert reason == "timestamp outside the allowed skew"


async def test_an_unknown_key_id_is_refused() -> None:
    reason = await refused(signed({HEADER_KEY_ID: "someone-else"}))
    assert reason == "unknown key id or key without a signing secret"


# --- refused: the signature does not cover this request ----------------------------------------


async def test_a_signature_made_with_another_secret_is_refused() -> None:
    assert await refused(signed(secret=NEW_SECRET)) == "signature mismatch"


async def test_a_body_changed_by_one_byte_is_refused() -> None:
    changed = BODY.replace(b"hi", b"hI")
    assert len(changed) == len(BODY)
    assert await refused(signed(), body=changed) == "signature mismatch"


@pytest.mark.parametrize(
    "path",
    ["/v1/embeddings", PATH + "?stream=true", PATH + "?", "/V1/chat/completions"],
    ids=["other-path", "added-query", "empty-query", "case"],
)
async def test_a_changed_path_or_query_is_refused(path: str) -> None:
    assert await refused(signed(), path=path) == "signature mismatch"


async def test_a_changed_query_string_is_refused() -> None:
    headers = sign_request(SECRET, "GET", "/v1/models?a=1", b"", int(NOW), key_id=KEY_ID)
    assert await refused(headers, method="GET", path="/v1/models?a=2", body=b"") == (
        "signature mismatch"
    )


async def test_a_changed_method_is_refused() -> None:
    assert await refused(signed(), method="PUT") == "signature mismatch"


async def test_a_secret_removed_by_rotation_no_longer_verifies() -> None:
    assert await refused(signed(), secrets=[NEW_SECRET]) == "signature mismatch"


# --- replay ------------------------------------------------------------------------------------


async def test_a_replayed_request_is_refused() -> None:
    guard = MemoryReplayGuard()
    headers = signed()
    assert await verify(headers, replay=guard) == KEY_ID
    assert await refused(headers, replay=guard) == "replayed signature"


async def test_a_replay_with_fewer_offered_signatures_is_still_a_replay() -> None:
    # During a rotation the client signs with both secrets; dropping one signature from the
    # captured header must not make the captured request new again.
    guard = MemoryReplayGuard()
    both = [SECRET, NEW_SECRET]
    old, new = signed()[HEADER_SIGNATURE], signed(secret=NEW_SECRET)[HEADER_SIGNATURE]
    assert await verify(signed({HEADER_SIGNATURE: f"{old},{new}"}), replay=guard, secrets=both)
    reason = await refused(signed({HEADER_SIGNATURE: new}), replay=guard, secrets=both)
    assert reason == "replayed signature"


async def test_a_signature_is_remembered_for_twice_the_skew_window() -> None:
    clock = [0.0]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    headers = signed()
    assert await verify(headers, replay=guard) == KEY_ID
    clock[0] = 599.0
    assert await refused(headers, replay=guard) == "replayed signature"
    clock[0] = 601.0
    assert await verify(headers, replay=guard) == KEY_ID


async def test_refused_signatures_never_reach_the_replay_cache() -> None:
    guard = MemoryReplayGuard()
    for n in range(50):
        forged = signed({HEADER_SIGNATURE: f"v1={n:064x}"})
        assert await refused(forged, replay=guard) == "signature mismatch"
    assert len(guard) == 0
    assert await verify(signed(), replay=guard) == KEY_ID


async def test_the_failure_text_never_contains_the_secret_or_the_signature() -> None:
    headers = signed(secret=NEW_SECRET)
    with pytest.raises(AuthFailed) as excinfo:
        await verify(headers)
    shown = f"{excinfo.value} {excinfo.value!r} {excinfo.value.reason}"
    assert SECRET.decode() not in shown and NEW_SECRET.decode() not in shown
    assert headers[HEADER_SIGNATURE][3:] not in shown
