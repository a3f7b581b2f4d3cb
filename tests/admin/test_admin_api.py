"""The admin API on SQLite and PostgreSQL: CRUD, validation, secrets shown once, isolation."""

from __future__ import annotations

import base64
import csv
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from relaygate.store.tables import ApiKey, UsageRecord
from tests.admin.conftest import AdminHarness


async def _post(h: AdminHarness, path: str, body: Any, key: str | None = None) -> Any:
    response = await h.client.post(path, json=body, headers=h.as_(key or h.operator_key))
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_tenant_key_and_policy_lifecycle(admin: AdminHarness) -> None:
    h = admin
    tenant = await _post(h, "/tenants", {"id": "acme", "allowed_models": ["fast"]})
    assert tenant["name"] == "acme"
    envs = (await h.client.get("/tenants/acme/environments", headers=h.as_(h.operator_key))).json()
    assert [e["name"] for e in envs["data"]] == ["production"]
    await _post(h, "/tenants/acme/environments", {"name": "staging"})
    key = await _post(
        h,
        "/tenants/acme/keys",
        {"environment": "staging", "name": "wp", "max_tokens": 500, "signing": True},
    )
    assert key["key"].startswith("rg_test_") and key["signing_secret"]
    listed = (await h.client.get("/tenants/acme/keys", headers=h.as_(h.operator_key))).text
    assert key["key"] not in listed and key["signing_secret"] not in listed
    assert "key_hash" not in listed and '"has_signing_secret":true' in listed
    async with h.context.sessions() as session:
        row = await session.get(ApiKey, key["id"])
    assert row is not None and row.signing_secret is not None
    assert key["signing_secret"] not in row.signing_secret
    opened = h.context.sealer.open(row.signing_secret, f"api_keys/{key['id']}/signing")
    assert opened.decode() == key["signing_secret"]
    limit = await _post(h, "/tenants/acme/limits", {"scope": "key", "subject": key["id"], "rpm": 5})
    patched = await h.client.patch(
        f"/tenants/acme/limits/{limit['id']}", json={"tpm": 1000}, headers=h.as_(h.operator_key)
    )
    assert patched.json()["tpm"] == 1000 and patched.json()["rpm"] == 5
    budget = await _post(
        h,
        "/tenants/acme/budgets",
        {
            "scope": "user",
            "subject": "*",
            "period": "month",
            "limit_usd": 3,
            "hard": False,
            "downgrade_to": "fast",
            "alert": True,
        },
    )
    assert budget["downgrade_to"] == "fast"
    revoked = await _post(h, f"/tenants/acme/keys/{key['id']}/revoke", {})
    assert revoked["revoked_at"] is not None
    assert len(h.reloads) == 7  # every write reloads the gateway's policy
    deleted = await h.client.delete("/tenants/acme", headers=h.as_(h.operator_key))
    assert deleted.status_code == 204
    gone = await h.client.get("/tenants/acme/keys", headers=h.as_(h.operator_key))
    assert gone.status_code == 404


async def test_bad_input_is_a_400_naming_the_field_and_duplicates_409(admin: AdminHarness) -> None:
    h = admin
    auth = h.as_(h.operator_key)
    cases = [
        ("/tenants", {"id": "bad id!"}, "id"),
        ("/tenants", {"id": "t", "surprise": 1}, "surprise"),
        ("/tenants", {"id": "t", "allowed_models": ["nope"]}, "allowed_models"),
    ]
    for path, body, param in cases:
        response = await h.client.post(path, json=body, headers=auth)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    await _post(h, "/tenants", {"id": "t"})
    assert (await h.client.post("/tenants", json={"id": "t"}, headers=auth)).status_code == 409
    for path, body, param in [
        ("/tenants/t/limits", {"scope": "key", "subject": "nokey", "rpm": 1}, "subject"),
        ("/tenants/t/limits", {"scope": "user", "subject": "*"}, None),
        ("/tenants/t/budgets", {"scope": "tenant", "period": "week", "limit_usd": 1}, "period"),
        ("/tenants/t/budgets", {"scope": "tenant", "period": "day", "limit_usd": -1}, "limit_usd"),
        ("/tenants/t/keys", {"environment": "nope"}, "environment"),
        ("/tenants/t/keys", {"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        (
            "/tenants/t/jwt-issuers",
            {"issuer": "i", "audience": "a", "algorithm": "HS256", "keys": {"k": "c2hvcnQ"}},
            "keys.k",
        ),
    ]:
        response = await h.client.post(path, json=body, headers=auth)
        assert response.status_code == 400, (path, response.text)
        if param:
            assert response.json()["error"]["param"] == param, response.text
    await _post(h, "/tenants/t/limits", {"scope": "user", "subject": "*", "rpm": 1})
    again = await h.client.post(
        "/tenants/t/limits", json={"scope": "user", "subject": "*", "rpm": 2}, headers=auth
    )
    assert again.status_code == 409


async def test_jwt_issuers_keep_hmac_secrets_sealed(admin: AdminHarness) -> None:
    h = admin
    await _post(h, "/tenants", {"id": "site"})
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    hs = await _post(
        h,
        "/tenants/site/jwt-issuers",
        {"issuer": "https://site", "audience": "rg", "algorithm": "HS256", "keys": {"k1": secret}},
    )
    assert hs["kids"] == ["k1"] and hs["public_keys"] == {}
    listing = (await h.client.get("/tenants/site/jwt-issuers", headers=h.as_(h.operator_key))).text
    assert secret not in listing
    rs = await _post(
        h,
        "/tenants/site/jwt-issuers",
        {"issuer": "https://site/rs", "audience": "rg", "algorithm": "RS256", "keys": {"r": pem}},
    )
    assert rs["public_keys"]["r"] == pem
    duplicate = await h.client.post(
        "/tenants/site/jwt-issuers",
        json={"issuer": "https://site", "audience": "x", "algorithm": "RS256", "keys": {"r": pem}},
        headers=h.as_(h.operator_key),
    )
    assert duplicate.status_code == 409


async def test_tenant_b_gets_404_on_every_id_of_tenant_a(admin: AdminHarness) -> None:
    h = admin
    for tenant in ("tenant-a", "tenant-b"):
        await _post(h, "/tenants", {"id": tenant})
    a_admin = await h.tenant_admin("tenant-a")
    b_admin = await h.tenant_admin("tenant-b")
    key = await _post(h, "/tenants/tenant-a/keys", {"name": "k"}, a_admin)
    limit = await _post(h, "/tenants/tenant-a/limits", {"scope": "tenant", "rpm": 9}, a_admin)
    budget = await _post(
        h,
        "/tenants/tenant-a/budgets",
        {"scope": "tenant", "period": "day", "limit_usd": 1},
        a_admin,
    )
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    issuer = await _post(
        h,
        "/tenants/tenant-a/jwt-issuers",
        {"issuer": "https://a", "audience": "rg", "algorithm": "RS256", "keys": {"k": pem}},
        a_admin,
    )
    await _post(h, "/tenants/tenant-a/environments", {"name": "staging"}, a_admin)
    a = "/tenants/tenant-a"
    attempts = [
        ("GET", a, None),
        ("PATCH", a, {"name": "mine now"}),
        ("DELETE", a, None),
        ("GET", f"{a}/keys", None),
        ("POST", f"{a}/keys", {"name": "x"}),
        ("GET", f"{a}/keys/{key['id']}", None),
        ("PATCH", f"{a}/keys/{key['id']}", {"max_tokens": 1}),
        ("POST", f"{a}/keys/{key['id']}/revoke", {}),
        ("POST", f"{a}/keys/{key['id']}/rotate-signing-secret", {}),
        ("DELETE", f"{a}/keys/{key['id']}", None),
        ("GET", f"{a}/limits/{limit['id']}", None),
        ("PATCH", f"{a}/limits/{limit['id']}", {"rpm": 1000}),
        ("DELETE", f"{a}/limits/{limit['id']}", None),
        ("GET", f"{a}/budgets/{budget['id']}", None),
        ("PATCH", f"{a}/budgets/{budget['id']}", {"limit_usd": 1000}),
        ("DELETE", f"{a}/budgets/{budget['id']}", None),
        ("GET", f"{a}/jwt-issuers/{issuer['id']}", None),
        ("DELETE", f"{a}/jwt-issuers/{issuer['id']}", None),
        ("GET", f"{a}/environments", None),
        ("DELETE", f"{a}/environments/staging", None),
        ("GET", f"{a}/events", None),
        ("GET", "/usage?tenant=tenant-a", None),
    ]
    for method, path, body in attempts:
        response = await h.client.request(method, path, json=body, headers=h.as_(b_admin))
        assert response.status_code == 404, (method, path, response.status_code)
    # Ids of tenant A under tenant B's own path are just as unknown.
    b = "/tenants/tenant-b"
    for path in (
        f"{b}/keys/{key['id']}",
        f"{b}/limits/{limit['id']}",
        f"{b}/budgets/{budget['id']}",
        f"{b}/jwt-issuers/{issuer['id']}",
    ):
        response = await h.client.get(path, headers=h.as_(b_admin))
        assert response.status_code == 404, path
    stolen = await h.client.post(
        f"{b}/limits", json={"scope": "key", "subject": key["id"], "rpm": 1}, headers=h.as_(b_admin)
    )
    assert stolen.status_code == 400
    visible = (await h.client.get("/tenants", headers=h.as_(b_admin))).json()["data"]
    assert [t["id"] for t in visible] == ["tenant-b"]
    everything = (await h.client.get("/tenants", headers=h.as_(h.operator_key))).json()["data"]
    assert {"tenant-a", "tenant-b"} <= {t["id"] for t in everything}
    assert (await h.client.get(f"{a}/keys/{key['id']}", headers=h.as_(a_admin))).status_code == 200
    create = await h.client.post("/tenants", json={"id": "c"}, headers=h.as_(b_admin))
    assert create.status_code == 403


async def test_missing_wrong_or_data_plane_keys_are_refused(admin: AdminHarness) -> None:
    h = admin
    await _post(h, "/tenants", {"id": "x"})
    data_key = (await _post(h, "/tenants/x/keys", {}))["key"]
    for headers in ({}, {"Authorization": "Bearer nope"}, h.as_(data_key), {"api-key": "nope"}):
        response = await h.client.get("/tenants", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid or missing credentials"
    assert (await h.client.get("/tenants", headers={"api-key": h.operator_key})).status_code == 200


async def test_usage_filters_groups_and_csv(admin: AdminHarness) -> None:
    h = admin
    now = datetime.now(UTC)
    rows = [
        ("acme", "k1", "u1", "sim-small", 0.5, 200, now - timedelta(days=1)),
        ("acme", "k1", "u2", "sim-small", 0.25, 200, now),
        ("acme", "k2", "u1", "sim-big", 1.0, 502, now),
        ("other", "k9", "u1", "sim-big", 9.0, 200, now),
    ]
    async with h.context.sessions.begin() as session:
        for i, (tenant, key, user, model, cost, status, at) in enumerate(rows):
            session.add(
                UsageRecord(
                    request_id=f"r{i}",
                    created_at=at,
                    tenant_id=tenant,
                    environment="production",
                    key_id=key,
                    end_user=user,
                    endpoint="chat",
                    route="fast",
                    provider="simulator",
                    model=model,
                    stream=False,
                    prompt_tokens=10,
                    completion_tokens=5,
                    cached_tokens=0,
                    cost_usd=cost,
                    latency_ms=1.0,
                    status=status,
                    outcome="ok",
                )
            )
    auth = h.as_(h.operator_key)
    records = (await h.client.get("/usage?tenant=acme&user=u1", headers=auth)).json()["data"]
    assert sorted(r["request_id"] for r in records) == ["r0", "r2"]
    since = (await h.client.get(f"/usage?tenant=acme&since={now.date()}", headers=auth)).json()
    assert sorted(r["request_id"] for r in since["data"]) == ["r1", "r2"]
    grouped = (await h.client.get("/usage?tenant=acme&group_by=model", headers=auth)).json()["data"]
    assert {g["model"]: (g["requests"], g["cost_usd"], g["errors"]) for g in grouped} == {
        "sim-small": (2, 0.75, 0),
        "sim-big": (1, 1.0, 1),
    }
    by_day = (await h.client.get("/usage?tenant=acme&group_by=day", headers=auth)).json()["data"]
    assert [d["day"] for d in by_day] == [
        (now - timedelta(days=1)).strftime("%Y-%m-%d"),
        now.strftime("%Y-%m-%d"),
    ]
    response = await h.client.get("/usage?group_by=tenant,key&format=csv", headers=auth)
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert {(r["tenant"], r["key"], r["requests"]) for r in table} == {
        ("acme", "k1", "2"),
        ("acme", "k2", "1"),
        ("other", "k9", "1"),
    }
    bad = await h.client.get("/usage?group_by=color", headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    async with h.context.sessions() as session:
        assert len((await session.execute(select(UsageRecord))).all()) == 4
