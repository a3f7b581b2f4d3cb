"""Vault signing secrets of an admin key: the stored form (and the one before rotation existed),
rotation with an overlap, how long replaced secrets are remembered, the operator's root."""

from __future__ import annotations

import pytest

from relaygate.auth import signing_secrets
from relaygate.auth.hmac_signing import sign_request
from relaygate.auth.signing_secrets import REMEMBER_S, SigningSecret


def test_a_secret_stored_before_rotation_existed_is_the_current_one() -> None:
    (entry,) = signing_secrets.parse(b"legacy-secret-text")
    assert entry.secret == b"legacy-secret-text" and entry.expires_at is None
    assert signing_secrets.active((entry,), now=1e12) == (b"legacy-secret-text",)


def test_stored_entries_read_back_as_written() -> None:
    entries = (SigningSecret(b"a", 10.0, 20.0), SigningSecret(b"b", 15.0))
    assert signing_secrets.parse(signing_secrets.dump(entries)) == entries


def test_a_rotation_keeps_the_previous_secret_for_the_overlap_only() -> None:
    first = (SigningSecret(b"one", 0.0),)
    second = signing_secrets.rotate(first, b"two", now=100.0, overlap_s=60)
    assert signing_secrets.active(second, 159.0) == (b"one", b"two")
    assert signing_secrets.active(second, 160.0) == (b"two",)
    # A rotation without overlap ends every earlier secret at once, open overlaps included.
    third = signing_secrets.rotate(second, b"three", now=110.0, overlap_s=0)
    assert signing_secrets.active(third, 110.0) == (b"three",)
    assert [e.secret for e in third] == [b"one", b"two", b"three"]
    # Replaced secrets are remembered (to explain refusals) for REMEMBER_S, then dropped.
    later = signing_secrets.rotate(third, b"four", now=110.0 + REMEMBER_S + 1, overlap_s=0)
    assert [e.secret for e in later] == [b"three", b"four"]


def test_a_request_signed_with_a_replaced_secret_is_recognised_not_accepted() -> None:
    entries = signing_secrets.rotate((SigningSecret(b"old", 0.0),), b"new", 100.0, 0)
    headers = sign_request("old", "GET", "/admin/v1/vault/secrets", b"", 100, key_id="k1")
    found = signing_secrets.expired_match(
        entries, headers, "GET", "/admin/v1/vault/secrets", b"", 101
    )
    assert found is not None and found.secret == b"old" and found.expires_at == 100.0
    current = sign_request("new", "GET", "/admin/v1/vault/secrets", b"", 100, key_id="k1")
    assert signing_secrets.expired_match(entries, current, "GET", "/x", b"", 101) is None
    assert (
        signing_secrets.expired_match(entries, current, "GET", "/admin/v1/vault/secrets", b"", 101)
        is None
    )


def test_the_operators_root_must_be_long_enough() -> None:
    assert signing_secrets.root_secret({}) is None
    assert signing_secrets.root_secret({"RELAYGATE_ADMIN_SIGNING_SECRET": "r" * 32}) == b"r" * 32
    with pytest.raises(ValueError, match="at least 32 characters") as caught:
        signing_secrets.root_secret({"RELAYGATE_ADMIN_SIGNING_SECRET": "short-root"})
    assert "short-root" not in str(caught.value)
