"""API key format, hashing and the in-memory keyring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaygate.auth.keyring import KeyEntry, Keyring, Principal
from relaygate.auth.keys import generate_key, has_valid_checksum, hash_key


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


def test_keyring_authenticates_by_hash_only() -> None:
    key, key_id = generate_key()
    principal = Principal(key_id=key_id, tenant_id="t1", environment="production")
    ring = Keyring([KeyEntry(hash_key(key), principal)])
    assert ring.authenticate(key) == principal
    assert ring.authenticate(key + "x") is None
    assert key not in repr(ring._by_hash)  # only hashes are held


def test_expired_keys_are_refused() -> None:
    key, key_id = generate_key()
    now = datetime.now(UTC)
    ring = Keyring(
        [
            KeyEntry(
                hash_key(key),
                Principal(key_id, "t", "production"),
                expires_at=now - timedelta(seconds=1),
            )
        ]
    )
    assert ring.authenticate(key, now) is None
