"""The AWS KMS KEK against moto, the established AWS fake (in process, no network)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from relaygate.vault.envelope import EnvelopeError, SealedSecret, SecretAddress, decrypt, encrypt
from relaygate.vault.kms.aws import AwsKmsKEK
from relaygate.vault.kms.base import KMSError, WrappedKey

ADDRESS = SecretAddress("acme", "production", "openai", 1)
VALUE = b"sk-aws-kms-" + b"k" * 32
REGION = "eu-west-1"
FAKE_SECRET_KEY = "fake-aws-secret-key-must-not-leak-0123"


@pytest.fixture
def key_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("kms", region_name=REGION)
        yield str(client.create_key(Description="relaygate test KEK")["KeyMetadata"]["KeyId"])


async def test_round_trip_and_context_binding(key_id: str) -> None:
    kek = AwsKmsKEK(key_id, region=REGION)
    sealed = await encrypt(kek, ADDRESS, VALUE)
    assert sealed.wrapped.kek_id == f"aws-kms:{key_id}" and sealed.wrapped.kek_version == 1
    assert await decrypt(kek, ADDRESS, sealed) == VALUE
    with pytest.raises(EnvelopeError, match="InvalidCiphertextException"):
        await decrypt(kek, SecretAddress("globex", "production", "openai", 1), sealed)


async def test_a_tampered_wrapped_key_fails(key_id: str) -> None:
    kek = AwsKmsKEK(key_id, region=REGION)
    sealed = await encrypt(kek, ADDRESS, VALUE)
    blob = bytearray(sealed.wrapped.blob)
    blob[-1] ^= 1
    tampered = SealedSecret(WrappedKey(kek.kek_id, 1, bytes(blob)), sealed.ciphertext)
    with pytest.raises(EnvelopeError):
        await decrypt(kek, ADDRESS, tampered)


async def test_rotation_and_rewrap(key_id: str) -> None:
    kek = AwsKmsKEK(key_id, region=REGION)
    sealed = await encrypt(kek, ADDRESS, VALUE)
    assert await kek.rotate() == 2
    rewrapped = await kek.rewrap(sealed.wrapped, ADDRESS.associated_data())
    assert rewrapped.kek_version == 2
    await kek.retire_below(2)
    assert await decrypt(kek, ADDRESS, SealedSecret(rewrapped, sealed.ciphertext)) == VALUE


async def test_errors_name_the_operation_not_the_credentials(key_id: str) -> None:
    kek = AwsKmsKEK("alias/does-not-exist", region=REGION)
    with pytest.raises(KMSError) as info:
        await kek.generate(ADDRESS.associated_data())
    assert "generate_data_key" in str(info.value) and FAKE_SECRET_KEY not in str(info.value)
