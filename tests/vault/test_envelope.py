"""Envelope encryption with the local key-encryption key: round trips and every way to misuse it."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from relaygate.vault.envelope import (
    OPERATOR,
    EnvelopeError,
    SealedSecret,
    SecretAddress,
    decrypt,
    encrypt,
)
from relaygate.vault.kms.base import KMSError, WrappedKey
from relaygate.vault.kms.local import ENV_VAR, FILE_NAME, LocalKEK, new_keyring

PROD = SecretAddress("acme", "production", "openai", 1)
VALUE = b"sk-live-envelope-test-value-0123456789"


@pytest.fixture
def kek(tmp_path: Path) -> LocalKEK:
    return LocalKEK.open({}, tmp_path)


async def test_round_trip_and_fresh_nonces(kek: LocalKEK) -> None:
    one = await encrypt(kek, PROD, VALUE)
    two = await encrypt(kek, PROD, VALUE)
    assert await decrypt(kek, PROD, one) == VALUE
    assert VALUE not in one.ciphertext and VALUE not in one.wrapped.blob
    # A fresh data key and a fresh nonce each time: nothing repeats.
    assert one.ciphertext[:12] != two.ciphertext[:12]
    assert one.wrapped.blob != two.wrapped.blob
    assert one.wrapped.kek_id == kek.kek_id and one.wrapped.kek_version == 1


@pytest.mark.parametrize(
    "moved",
    [
        SecretAddress("globex", "production", "openai", 1),  # another tenant
        SecretAddress("acme", "staging", "openai", 1),  # another environment
        SecretAddress("acme", "production", "anthropic", 1),  # another secret
        SecretAddress("acme", "production", "openai", 2),  # another version
        SecretAddress(OPERATOR, OPERATOR, "openai", 1),  # the operator's shared slot
    ],
)
async def test_a_ciphertext_moved_to_another_row_does_not_open(
    kek: LocalKEK, moved: SecretAddress
) -> None:
    sealed = await encrypt(kek, PROD, VALUE)
    with pytest.raises(EnvelopeError):
        await decrypt(kek, moved, sealed)


async def test_addresses_cannot_collide_by_shifting_separators() -> None:
    a = SecretAddress("ab", "c", "d", 1).associated_data()
    b = SecretAddress("a", "bc", "d", 1).associated_data()
    assert a != b


async def test_tampering_is_detected(kek: LocalKEK) -> None:
    sealed = await encrypt(kek, PROD, VALUE)
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(EnvelopeError):
        await decrypt(kek, PROD, SealedSecret(sealed.wrapped, bytes(flipped)))
    blob = bytearray(sealed.wrapped.blob)
    blob[20] ^= 1
    bad_key = dataclasses.replace(sealed.wrapped, blob=bytes(blob))
    with pytest.raises(EnvelopeError):
        await decrypt(kek, PROD, SealedSecret(bad_key, sealed.ciphertext))


async def test_another_keyring_cannot_unwrap(kek: LocalKEK, tmp_path: Path) -> None:
    sealed = await encrypt(kek, PROD, VALUE)
    other = LocalKEK.open({}, tmp_path / "other")
    with pytest.raises(EnvelopeError):
        await decrypt(other, PROD, sealed)
    # Same id forged onto the wrapped key: still the wrong key material.
    forged = WrappedKey(other.kek_id, 1, sealed.wrapped.blob)
    with pytest.raises(KMSError):
        await other.unwrap(forged, PROD.associated_data())


async def test_keyring_file_is_private_and_reused(tmp_path: Path) -> None:
    first = LocalKEK.open({}, tmp_path)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = await encrypt(first, PROD, VALUE)
    again = LocalKEK.open({}, tmp_path)  # a restart
    assert await decrypt(again, PROD, sealed) == VALUE


async def test_rotation_rewraps_without_the_value_and_retires_old_versions(
    kek: LocalKEK, tmp_path: Path
) -> None:
    sealed = await encrypt(kek, PROD, VALUE)
    assert await kek.rotate() == 2
    aad = PROD.associated_data()
    rewrapped = await kek.rewrap(sealed.wrapped, aad)
    assert rewrapped.kek_version == 2 and rewrapped.blob != sealed.wrapped.blob
    await kek.retire_below(2)
    # The old wrapping no longer opens; the rewrapped one opens the unchanged ciphertext.
    with pytest.raises(EnvelopeError):
        await decrypt(kek, PROD, sealed)
    assert await decrypt(kek, PROD, SealedSecret(rewrapped, sealed.ciphertext)) == VALUE
    keyring = json.loads((tmp_path / FILE_NAME).read_text())
    assert set(keyring["versions"]) == {"2"} and keyring["min_version"] == 2
    with pytest.raises(KMSError):
        await kek.retire_below(3)  # never the current version


async def test_a_sibling_process_sees_a_rotation(kek: LocalKEK, tmp_path: Path) -> None:
    sibling = LocalKEK.open({}, tmp_path)
    await kek.rotate()
    sealed = await encrypt(kek, PROD, VALUE)
    assert sealed.wrapped.kek_version == 2
    assert await decrypt(sibling, PROD, sealed) == VALUE
    assert (await encrypt(sibling, PROD, VALUE)).wrapped.kek_version == 2


async def test_keyring_from_the_environment_is_read_only(tmp_path: Path) -> None:
    text = new_keyring()
    kek = LocalKEK.open({ENV_VAR: text}, tmp_path)
    assert not (tmp_path / FILE_NAME).exists()
    sealed = await encrypt(kek, PROD, VALUE)
    assert await decrypt(LocalKEK.open({ENV_VAR: text}, tmp_path), PROD, sealed) == VALUE
    with pytest.raises(KMSError, match=ENV_VAR):
        await kek.rotate()


def test_malformed_keyrings_are_refused_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(KMSError) as info:
        LocalKEK.open({ENV_VAR: '{"kek_id": "x", "versions": {"1": "c2hvcnQ"}}'}, tmp_path)
    assert "c2hvcnQ" not in str(info.value)
    with pytest.raises(KMSError):
        LocalKEK.open({ENV_VAR: "not json"}, tmp_path)
