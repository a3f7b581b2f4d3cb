"""API key format, hashing and key lookup in the in-memory policy snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relaygate.auth.keys import (
    chosen_key_problem,
    display_prefix,
    generate_key,
    has_valid_checksum,
    hash_key,
)
from relaygate.policy.snapshot import KeyPolicy, PolicySnapshot


def test_generated_keys_have_prefix_id_and_checksum() -> None:
    key, key_id = generate_key()
    assert key.startswith(f"rg_live_{key_id}_")
    assert has_valid_checksum(key)
    assert len(key) >= 8 + 9 + 1 + 43 + 6  # 43 base62 characters carry 256 bits
    assert generate_key("staging")[0].startswith("rg_test_")
    assert generate_key()[0] != key


def test_checksum_catches_typos() -> None:
    key, _ = generate_key()
    typo = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert not has_valid_checksum(typo)
    assert not has_valid_checksum("operator-chosen-key-without-any-checksum")


def _snapshot(key: str, key_id: str, **fields: object) -> PolicySnapshot:
    policy = KeyPolicy(key_id, hash_key(key), "t1", "production", "tenant", **fields)  # type: ignore[arg-type]
    return PolicySnapshot(keys_by_hash={policy.key_hash: policy}, keys_by_id={key_id: policy})


def test_policy_snapshot_finds_keys_by_hash_only() -> None:
    key, key_id = generate_key()
    snapshot = _snapshot(key, key_id)
    found = snapshot.key_for(key)
    assert found is not None and found.key_id == key_id
    assert snapshot.key_for(key + "x") is None
    assert key not in repr(snapshot)  # only hashes are held


def test_expired_keys_are_recognised() -> None:
    key, key_id = generate_key()
    now = datetime.now(UTC)
    found = _snapshot(key, key_id, expires_at=now - timedelta(seconds=1)).key_for(key)
    assert found is not None and found.expired(now.timestamp())
    assert not found.expired((now - timedelta(seconds=2)).timestamp())


# Keys an operator chooses (RELAYGATE_DEFAULT_KEY / RELAYGATE_ADMIN_KEY), in every shape: a listing
# shows a generated key's type and id, and of anything else four characters.
CHOSEN_SHAPES = {
    "no separator": "rg_test_" + "A" * 40,
    "admin, no separator": "rg_admin_" + "B" * 40,
    "late separator": "rg_test_" + "C" * 30 + "_" + "D" * 10,
    "separator where a key id ends": "rg_live_" + "E" * 9 + "_" + "F" * 30,
    "plain": "my-local-key-0123456789abcdefghijkl",
}


@pytest.mark.parametrize("shape", sorted(CHOSEN_SHAPES))
def test_a_chosen_key_is_listed_by_four_characters_whatever_its_shape(shape: str) -> None:
    key = CHOSEN_SHAPES[shape]
    assert chosen_key_problem(key) is None
    assert display_prefix(key) == key[:4] + "..."


def test_a_generated_key_is_listed_by_its_type_and_id() -> None:
    for environment, admin, prefix in (
        ("production", False, "rg_live_"),
        ("staging", False, "rg_test_"),
        ("production", True, "rg_admin_"),
    ):
        key, key_id = generate_key(environment, admin=admin)
        assert display_prefix(key) == f"{prefix}{key_id}_"
        assert len(display_prefix(key)) <= 19 < len(key) // 3


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("rg_test_short", "at least 32 characters long (it has 13)"),
        ("x" * 257, "at most 256 characters long"),
        ("with a space in it 0123456789abcdefghij", "printable ASCII characters, without spaces"),
        ("tab\tinside-0123456789abcdefghijklmnopqr", "printable ASCII characters, without spaces"),
        ("non-ascii-é-0123456789abcdefghijklmnopqr", "printable ASCII characters, without spaces"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
            "must not look like a JWT",
        ),
    ],
)
def test_an_unusable_chosen_key_is_refused_without_quoting_it(key: str, reason: str) -> None:
    problem = chosen_key_problem(key)
    assert problem is not None and reason in problem
    assert key not in problem
