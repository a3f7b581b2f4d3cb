"""API keys through the admin API: shown once, never listed, sealed signing secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from relaygate.auth.keys import has_valid_checksum, hash_key
from relaygate.store.tables import ApiKey, LimitPolicy
from relaygate.vault.sealer import SealError
from tests.admin.conftest import AdminHarness

LISTED_FIELDS = {
    "id",
    "tenant_id",
    "environment",
    "kind",
    "name",
    "display_prefix",
    "created_at",
    "expires_at",
    "revoked_at",
    "allowed_models",
    "max_tokens",
    "max_body_bytes",
    "require_signature",
    "has_signing_secret",
}


async def _row(h: AdminHarness, key_id: str) -> ApiKey:
    async with h.context.sessions() as session:
        row = await session.get(ApiKey, key_id)
    assert row is not None
    return row


async def test_a_key_is_shown_once_and_never_listed(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    created = await admin.ok(
        "POST",
        "/tenants/acme/keys",
        {"name": "wordpress", "max_tokens": 500, "max_body_bytes": 65536, "signing": True},
    )
    key, secret = created["key"], created["signing_secret"]
    assert key.startswith("rg_live_") and has_valid_checksum(key)
    assert created["display_prefix"] == f"rg_live_{created['id']}_"
    assert set(created) == LISTED_FIELDS | {"key", "signing_secret"}
    assert created["has_signing_secret"] is True and created["kind"] == "tenant"
    row = await _row(admin, created["id"])
    assert row.key_hash == hash_key(key)
    listing = await admin.client.get("/tenants/acme/keys", headers=admin.as_(admin.operator_key))
    one = await admin.client.get(
        f"/tenants/acme/keys/{created['id']}", headers=admin.as_(admin.operator_key)
    )
    for response in (listing, one):
        assert key not in response.text and secret not in response.text
        assert row.key_hash not in response.text and "key_hash" not in response.text
        assert row.signing_secret is not None and row.signing_secret not in response.text
    assert set(one.json()) == LISTED_FIELDS
    assert [k["id"] for k in listing.json()["data"]] == [created["id"]]
    assert one.json()["max_tokens"] == 500 and one.json()["name"] == "wordpress"


async def test_the_signing_secret_is_stored_sealed(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    created = await admin.ok("POST", "/tenants/acme/keys", {"signing": True})
    secret = created["signing_secret"]
    assert len(secret) == 43  # base64url of 32 bytes, unpadded
    row = await _row(admin, created["id"])
    assert row.signing_secret is not None and secret not in row.signing_secret
    place = f"api_keys/{created['id']}/signing"
    assert admin.context.sealer.open(row.signing_secret, place).decode() == secret
    # Bound to its row: the same ciphertext does not open as another key's secret.
    other = await admin.ok("POST", "/tenants/acme/keys", {})
    assert other["signing_secret"] is None and other["has_signing_secret"] is False
    with pytest.raises(SealError):
        admin.context.sealer.open(row.signing_secret, f"api_keys/{other['id']}/signing")


async def test_rotating_replaces_the_signing_secret(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    created = await admin.ok("POST", "/tenants/acme/keys", {"signing": True})
    path = f"/tenants/acme/keys/{created['id']}/rotate-signing-secret"
    rotated = await admin.ok("POST", path)
    assert set(rotated) == {"signing_secret"}
    assert rotated["signing_secret"] != created["signing_secret"]
    row = await _row(admin, created["id"])
    assert row.signing_secret is not None
    place = f"api_keys/{created['id']}/signing"
    assert (
        admin.context.sealer.open(row.signing_secret, place).decode() == rotated["signing_secret"]
    )
    # A key without a secret gets one (then it may require signed requests).
    plain = await admin.ok("POST", "/tenants/acme/keys", {})
    await admin.error(
        400, "PATCH", f"/tenants/acme/keys/{plain['id']}", {"require_signature": True}
    )
    await admin.ok("POST", f"/tenants/acme/keys/{plain['id']}/rotate-signing-secret")
    patched = await admin.ok(
        "PATCH", f"/tenants/acme/keys/{plain['id']}", {"require_signature": True}
    )
    assert patched["require_signature"] is True and patched["has_signing_secret"] is True


async def test_environment_and_kind_shape_the_key(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    await admin.ok("POST", "/tenants/acme/environments", {"name": "staging"})
    test_key = await admin.ok("POST", "/tenants/acme/keys", {"environment": "staging"})
    assert test_key["key"].startswith("rg_test_") and test_key["environment"] == "staging"
    admin_key = await admin.ok("POST", "/tenants/acme/keys", {"kind": "admin"})
    assert admin_key["key"].startswith("rg_admin_") and admin_key["kind"] == "admin"
    # The new tenant admin key works on this API at once (the policy was reloaded).
    mine = await admin.ok("GET", "/tenants", key=admin_key["key"])
    assert [t["id"] for t in mine["data"]] == ["acme"]


async def test_key_validation(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body, param in [
        ({"environment": "nope"}, "environment"),
        ({"expires_at": past}, "expires_at"),
        ({"expires_at": "not a time"}, "expires_at"),
        ({"allowed_models": ["fast", "gpt-unknown"]}, "allowed_models"),
        ({"kind": "root"}, "kind"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"max_body_bytes": -1}, "max_body_bytes"),
        ({"require_signature": True}, "require_signature"),
        ({"kind": "admin", "signing": True}, "signing"),
        ({"key": "rg_live_mine"}, "key"),
    ]:
        error = await admin.error(400, "POST", "/tenants/acme/keys", body)
        assert error["param"] == param, (body, error)
    assert (await admin.ok("GET", "/tenants/acme/keys"))["data"] == []


async def test_patch_changes_scopes_and_expiry(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    created = await admin.ok(
        "POST", "/tenants/acme/keys", {"name": "a", "max_tokens": 100, "allowed_models": ["fast"]}
    )
    path = f"/tenants/acme/keys/{created['id']}"
    later = datetime.now(UTC) + timedelta(days=30)
    patched = await admin.ok(
        "PATCH",
        path,
        {"name": "b", "max_tokens": None, "max_body_bytes": 1024, "expires_at": later.isoformat()},
    )
    assert patched["name"] == "b" and patched["max_tokens"] is None
    assert patched["max_body_bytes"] == 1024 and patched["allowed_models"] == ["fast"]
    assert datetime.fromisoformat(patched["expires_at"]) == later
    assert (await admin.ok("GET", path)) == patched
    cleared = await admin.ok("PATCH", path, {"expires_at": None, "allowed_models": None})
    assert cleared["expires_at"] is None and cleared["allowed_models"] is None
    error = await admin.error(400, "PATCH", path, {"expires_at": "2001-01-01T00:00:00Z"})
    assert error["param"] == "expires_at"
    await admin.error(400, "PATCH", path, {"key_hash": "00"})
    await admin.error(404, "PATCH", "/tenants/acme/keys/unknown", {"name": "x"})


async def test_revoke_is_idempotent_and_keeps_the_key_listed(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    tenant_admin = await admin.tenant_admin("acme")
    created = await admin.ok("POST", "/tenants/acme/keys", {}, key=tenant_admin)
    path = f"/tenants/acme/keys/{created['id']}/revoke"
    first = await admin.ok("POST", path)
    assert first["revoked_at"] is not None
    again = await admin.ok("POST", path)
    assert again["revoked_at"] == first["revoked_at"]
    listed = (await admin.ok("GET", "/tenants/acme/keys"))["data"]
    assert {k["id"]: k["revoked_at"] for k in listed}[created["id"]] == first["revoked_at"]
    # A revoked admin key stops working on this API.
    admin_id = next(k["id"] for k in listed if k["kind"] == "admin")
    await admin.ok("POST", f"/tenants/acme/keys/{admin_id}/revoke")
    await admin.error(401, "GET", "/tenants", key=tenant_admin)


async def test_delete_removes_the_key_and_its_key_limits(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    created = await admin.ok("POST", "/tenants/acme/keys", {})
    other = await admin.ok("POST", "/tenants/acme/keys", {})
    for key in (created, other):
        await admin.ok(
            "POST", "/tenants/acme/limits", {"scope": "key", "subject": key["id"], "rpm": 3}
        )
    await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {"scope": "key", "subject": created["id"], "period": "day", "limit_usd": 1},
    )
    assert await admin.ok("DELETE", f"/tenants/acme/keys/{created['id']}") is None
    await admin.error(404, "GET", f"/tenants/acme/keys/{created['id']}")
    await admin.error(404, "DELETE", f"/tenants/acme/keys/{created['id']}")
    async with admin.context.sessions() as session:
        subjects = (await session.execute(select(LimitPolicy.subject))).scalars().all()
    assert subjects == [other["id"]]
    assert (await admin.ok("GET", "/tenants/acme/budgets"))["data"] == []
