"""Issuer keys are parsed into typed keys when configured, and bad material is refused."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from relaygate.auth.jwt_tokens import load_issuer_key
from tests.auth.material import EC_KEY, HS_SECRET, RSA_KEY, private_pem, public_pem


def test_an_hs256_secret_of_32_bytes_is_kept_as_bytes() -> None:
    assert load_issuer_key("HS256", HS_SECRET) == HS_SECRET
    assert load_issuer_key("HS256", "k" * 32) == b"k" * 32


def test_an_rsa_2048_public_key_pem_becomes_an_rsa_public_key() -> None:
    key = load_issuer_key("RS256", public_pem(RSA_KEY).decode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers() == RSA_KEY.public_key().public_numbers()


def test_a_pkcs1_rsa_public_key_pem_is_accepted() -> None:
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert isinstance(load_issuer_key("RS256", pem), rsa.RSAPublicKey)


def test_a_p256_public_key_pem_becomes_an_ec_public_key() -> None:
    key = load_issuer_key("ES256", public_pem(EC_KEY))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"


def test_a_short_hs256_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_issuer_key("HS256", b"x" * 31)


def test_a_public_key_pem_as_hs256_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PEM"):
        load_issuer_key("HS256", public_pem(RSA_KEY))


def test_an_rsa_1024_key_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="at least 2048 bits"):
        load_issuer_key("RS256", public_pem(small))


def test_a_p384_key_for_es256_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        load_issuer_key("ES256", public_pem(p384))


def test_an_rsa_key_for_es256_is_refused() -> None:
    with pytest.raises(ValueError, match="P-256"):
        load_issuer_key("ES256", public_pem(RSA_KEY))


def test_an_ec_key_for_rs256_is_refused() -> None:
    with pytest.raises(ValueError, match="RSA public key"):
        load_issuer_key("RS256", public_pem(EC_KEY))


def test_an_ed25519_key_is_refused() -> None:
    with pytest.raises(ValueError, match="P-256"):
        load_issuer_key("ES256", public_pem(ed25519.Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(("algorithm", "key"), [("RS256", RSA_KEY), ("ES256", EC_KEY)])
def test_a_private_key_is_refused(algorithm: str, key: Any) -> None:
    # Decision: the gateway only verifies. Accepting a private key would store (and list)
    # the site's signing key in the gateway's database.
    with pytest.raises(ValueError, match="PUBLIC key"):
        load_issuer_key(algorithm, private_pem(key))


@pytest.mark.parametrize("material", ["", "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n"])
def test_garbage_is_refused(material: str) -> None:
    with pytest.raises(ValueError, match="PEM public keys"):
        load_issuer_key("RS256", material)


@pytest.mark.parametrize("algorithm", ["none", "HS512", "RS384", "PS256", "EdDSA", "hs256"])
def test_other_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        load_issuer_key(algorithm, HS_SECRET)
