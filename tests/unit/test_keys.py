"""API key format, hashing and key lookup in the in-memory policy snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaygate.auth.keys import generate_key, has_valid_checksum, hash_key
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
