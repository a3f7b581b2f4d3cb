"""Tenants and environments through the admin API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from relaygate.store.tables import (
    ApiKey,
    BudgetPolicy,
    Environment,
    JwtIssuerRecord,
    LimitPolicy,
    UsageRecord,
)
from tests.admin.conftest import AdminHarness
from tests.admin.material import rsa_public_pem, usage_row


async def test_a_tenant_is_created_with_its_production_environment(admin: AdminHarness) -> None:
    created = await admin.tenant("acme-blog", name="ACME blog", allowed_models=["fast", "smart"])
    assert created["id"] == "acme-blog" and created["name"] == "ACME blog"
    assert created["allowed_models"] == ["fast", "smart"]
    assert datetime.fromisoformat(created["created_at"]).utcoffset() == timedelta(0)
    assert await admin.ok("GET", "/tenants/acme-blog") == created
    envs = await admin.ok("GET", "/tenants/acme-blog/environments")
    assert [e["name"] for e in envs["data"]] == ["production"]
    listed = await admin.ok("GET", "/tenants")
    assert listed["object"] == "list" and [t["id"] for t in listed["data"]] == ["acme-blog"]


async def test_name_defaults_to_the_id_and_patch_changes_only_given_fields(
    admin: AdminHarness,
) -> None:
    await admin.tenant("site", allowed_models=["fast"])
    assert (await admin.ok("GET", "/tenants/site"))["name"] == "site"
    renamed = await admin.ok("PATCH", "/tenants/site", {"name": "The site"})
    assert renamed["name"] == "The site" and renamed["allowed_models"] == ["fast"]
    widened = await admin.ok("PATCH", "/tenants/site", {"allowed_models": None})
    assert widened["name"] == "The site" and widened["allowed_models"] is None
    narrowed = await admin.ok("PATCH", "/tenants/site", {"allowed_models": ["smart", "smart"]})
    assert narrowed["allowed_models"] == ["smart"]


async def test_tenant_validation_and_duplicates(admin: AdminHarness) -> None:
    for body, param in [
        ({"id": "bad id!"}, "id"),
        ({"id": "-leading-dash"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"id": "t", "surprise": 1}, "surprise"),
        ({"id": "t", "allowed_models": ["nope"]}, "allowed_models"),
        ({"id": "t", "name": ""}, "name"),
        ({"id": "t", "name": "a\x00b"}, "name"),
        ({}, "id"),
    ]:
        error = await admin.error(400, "POST", "/tenants", body)
        assert error["param"] == param, (body, error)
        assert error["type"] == "invalid_request_error"
    await admin.tenant("t")
    duplicate = await admin.error(409, "POST", "/tenants", {"id": "t"})
    assert duplicate["type"] == "conflict_error"
    missing = await admin.error(404, "GET", "/tenants/nope")
    assert missing["type"] == "not_found_error"
    await admin.error(404, "PATCH", "/tenants/nope", {"name": "x"})
    await admin.error(404, "DELETE", "/tenants/nope")
    bad_json = await admin.client.post(
        "/tenants",
        content=b"{not json",
        headers={**admin.as_(admin.operator_key), "content-type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"


async def test_deleting_a_tenant_removes_its_objects_but_keeps_usage(admin: AdminHarness) -> None:
    for tenant in ("gone", "kept"):
        await admin.tenant(tenant)
        await admin.ok("POST", f"/tenants/{tenant}/environments", {"name": "staging"})
        key = await admin.ok("POST", f"/tenants/{tenant}/keys", {"signing": True})
        await admin.ok("POST", f"/tenants/{tenant}/limits", {"scope": "tenant", "rpm": 5})
        await admin.ok(
            "POST",
            f"/tenants/{tenant}/limits",
            {"scope": "key", "subject": key["id"], "tpm": 500},
        )
        await admin.ok(
            "POST",
            f"/tenants/{tenant}/budgets",
            {"scope": "tenant", "period": "month", "limit_usd": 5},
        )
        await admin.ok(
            "POST",
            f"/tenants/{tenant}/jwt-issuers",
            {
                "issuer": f"https://{tenant}",
                "audience": "rg",
                "algorithm": "RS256",
                "keys": {"k": rsa_public_pem()},
            },
        )
    async with admin.context.sessions.begin() as session:
        session.add(usage_row("r-gone", tenant="gone"))
    assert await admin.ok("DELETE", "/tenants/gone") is None
    await admin.error(404, "GET", "/tenants/gone")
    await admin.error(404, "GET", "/tenants/gone/keys")
    async with admin.context.sessions() as session:
        for table in (ApiKey, LimitPolicy, BudgetPolicy, JwtIssuerRecord, Environment):
            count = select(func.count()).select_from(table)
            assert (await session.execute(count.where(table.tenant_id == "gone"))).scalar() == 0
            assert (await session.execute(count.where(table.tenant_id == "kept"))).scalar_one() > 0
        usage = await session.execute(select(UsageRecord.request_id))
        assert usage.scalars().all() == ["r-gone"]
    # The id can be used again, from scratch.
    again = await admin.tenant("gone")
    assert again["allowed_models"] is None
    assert (await admin.ok("GET", "/tenants/gone/keys"))["data"] == []


async def test_environments_add_list_delete(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    staging = await admin.ok("POST", "/tenants/acme/environments", {"name": "staging"})
    assert staging["tenant_id"] == "acme" and staging["name"] == "staging"
    await admin.ok("POST", "/tenants/acme/environments", {"name": "dev.eu-1"})
    names = [e["name"] for e in (await admin.ok("GET", "/tenants/acme/environments"))["data"]]
    assert names == ["dev.eu-1", "production", "staging"]
    await admin.error(409, "POST", "/tenants/acme/environments", {"name": "staging"})
    error = await admin.error(400, "POST", "/tenants/acme/environments", {"name": "no spaces"})
    assert error["param"] == "name"
    assert await admin.ok("DELETE", "/tenants/acme/environments/dev.eu-1") is None
    await admin.error(404, "DELETE", "/tenants/acme/environments/dev.eu-1")
    names = [e["name"] for e in (await admin.ok("GET", "/tenants/acme/environments"))["data"]]
    assert names == ["production", "staging"]


async def test_an_environment_in_use_cannot_be_deleted(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    for env in ("staging", "web"):
        await admin.ok("POST", "/tenants/acme/environments", {"name": env})
    key = await admin.ok("POST", "/tenants/acme/keys", {"environment": "staging"})
    await admin.ok(
        "POST",
        "/tenants/acme/jwt-issuers",
        {
            "issuer": "https://acme",
            "audience": "rg",
            "algorithm": "RS256",
            "environment": "web",
            "keys": {"k": rsa_public_pem()},
        },
    )
    assert (
        "keys"
        in (await admin.error(409, "DELETE", "/tenants/acme/environments/staging"))["message"]
    )
    await admin.error(409, "DELETE", "/tenants/acme/environments/web")
    # A revoked key still uses it (it stays listed for audit); a deleted one does not.
    await admin.ok("POST", f"/tenants/acme/keys/{key['id']}/revoke")
    await admin.error(409, "DELETE", "/tenants/acme/environments/staging")
    await admin.ok("DELETE", f"/tenants/acme/keys/{key['id']}")
    await admin.ok("DELETE", "/tenants/acme/environments/staging")
