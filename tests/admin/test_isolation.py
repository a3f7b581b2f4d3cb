"""Tenant isolation (BOLA): another tenant's admin gets 404 for every object of tenant A."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relaygate.store.tables import ApiKey, BudgetEvent
from tests.admin.conftest import AdminHarness
from tests.admin.material import rsa_public_pem, usage_row

A = "/tenants/tenant-a"
B = "/tenants/tenant-b"


async def _tenant_a(h: AdminHarness, a_admin: str) -> dict[str, Any]:
    """Every kind of object tenant A can own, created by A's own admin (and the operator)."""
    key = await h.ok("POST", f"{A}/keys", {"name": "k", "signing": True}, a_admin)
    limit = await h.ok(
        "POST", f"{A}/limits", {"scope": "key", "subject": key["id"], "rpm": 9}, a_admin
    )
    budget = await h.ok(
        "POST",
        f"{A}/budgets",
        {"scope": "user", "subject": "*", "period": "day", "limit_usd": 1},
        a_admin,
    )
    tenant_limit = await h.ok("POST", f"{A}/limits", {"scope": "tenant", "rpm": 100})
    issuer = await h.ok(
        "POST",
        f"{A}/jwt-issuers",
        {
            "issuer": "https://a",
            "audience": "rg",
            "algorithm": "RS256",
            "keys": {"k": rsa_public_pem()},
        },
        a_admin,
    )
    await h.ok("POST", f"{A}/environments", {"name": "staging"}, a_admin)
    async with h.context.sessions.begin() as session:
        session.add(usage_row("ra", tenant="tenant-a", key=key["id"]))
        session.add(usage_row("rb", tenant="tenant-b", key="kb"))
        session.add(
            BudgetEvent(
                tenant_id="tenant-a",
                budget_id=budget["id"],
                subject_id="42",
                period_key="2026-01-01",
                kind="soft_cap",
                spent_usd=1.5,
                limit_usd=1.0,
                created_at=datetime.now(UTC),
            )
        )
    return {
        "key": key,
        "limit": limit,
        "tenant_limit": tenant_limit,
        "budget": budget,
        "issuer": issuer,
    }


def _attempts(ids: dict[str, Any], base: str) -> list[tuple[str, str, Any]]:
    key, limit, budget, issuer = (ids[n]["id"] for n in ("key", "limit", "budget", "issuer"))
    by_id = [
        ("GET", f"{base}/keys/{key}", None),
        ("PATCH", f"{base}/keys/{key}", {"max_tokens": 1}),
        ("POST", f"{base}/keys/{key}/revoke", None),
        ("POST", f"{base}/keys/{key}/rotate-signing-secret", None),
        ("DELETE", f"{base}/keys/{key}", None),
        ("GET", f"{base}/limits/{limit}", None),
        ("PATCH", f"{base}/limits/{limit}", {"rpm": 1000}),
        ("DELETE", f"{base}/limits/{limit}", None),
        ("GET", f"{base}/limits/{ids['tenant_limit']['id']}", None),
        ("DELETE", f"{base}/limits/{ids['tenant_limit']['id']}", None),
        ("GET", f"{base}/budgets/{budget}", None),
        ("PATCH", f"{base}/budgets/{budget}", {"limit_usd": 1000}),
        ("DELETE", f"{base}/budgets/{budget}", None),
        ("GET", f"{base}/jwt-issuers/{issuer}", None),
        ("DELETE", f"{base}/jwt-issuers/{issuer}", None),
    ]
    if base == B:
        by_id.append(("DELETE", f"{B}/environments/staging", None))
        return by_id
    return [
        ("GET", A, None),
        ("PATCH", A, {"name": "mine now"}),
        ("DELETE", A, None),
        ("GET", f"{A}/environments", None),
        ("POST", f"{A}/environments", {"name": "evil"}),
        ("DELETE", f"{A}/environments/staging", None),
        ("DELETE", f"{A}/environments/production", None),
        ("GET", f"{A}/keys", None),
        ("POST", f"{A}/keys", {"name": "x"}),
        ("POST", f"{A}/keys", {"kind": "admin"}),
        ("GET", f"{A}/limits", None),
        ("POST", f"{A}/limits", {"scope": "user", "subject": "*", "rpm": 1}),
        ("GET", f"{A}/budgets", None),
        (
            "POST",
            f"{A}/budgets",
            {"scope": "user", "subject": "*", "period": "day", "limit_usd": 1},
        ),
        ("GET", f"{A}/jwt-issuers", None),
        (
            "POST",
            f"{A}/jwt-issuers",
            {"issuer": "https://x", "audience": "a", "algorithm": "RS256", "keys": {"k": "x"}},
        ),
        ("GET", f"{A}/events", None),
        ("GET", "/usage?tenant=tenant-a", None),
        ("GET", "/usage?tenant=tenant-a&group_by=key&format=csv", None),
        *by_id,
    ]


async def test_tenant_b_gets_404_for_every_object_of_tenant_a(admin: AdminHarness) -> None:
    h = admin
    for tenant in ("tenant-a", "tenant-b"):
        await h.tenant(tenant)
    a_admin, b_admin = await h.tenant_admin("tenant-a"), await h.tenant_admin("tenant-b")
    ids = await _tenant_a(h, a_admin)
    async with h.context.sessions() as session:
        before = await session.get(ApiKey, ids["key"]["id"])
    assert before is not None
    version = await h.policy_version()
    # Each answer is the same as for an id that does not exist at all.
    no_tenant = await h.error(404, "GET", "/tenants/no-such-tenant/keys", key=b_admin)
    no_key = await h.error(404, "GET", f"{B}/keys/nosuchkey1", key=b_admin)
    for method, path, body in [*_attempts(ids, A), *_attempts(ids, B)]:
        error = await h.error(404, method, path, body, key=b_admin)
        assert error["type"] == "not_found_error"
        if path.startswith(A):
            assert error == no_tenant
        elif path.startswith(f"{B}/keys/"):
            assert error == no_key
    assert await h.policy_version() == version
    # Tenant A is untouched: key active, same signing secret, policies unchanged.
    async with h.context.sessions() as session:
        after = await session.get(ApiKey, ids["key"]["id"])
    assert after is not None and after.revoked_at is None
    assert after.signing_secret == before.signing_secret and after.max_tokens is None
    assert await h.ok("GET", f"{A}/limits/{ids['limit']['id']}") == ids["limit"]
    assert await h.ok("GET", f"{A}/budgets/{ids['budget']['id']}") == ids["budget"]
    assert await h.ok("GET", f"{A}/jwt-issuers/{ids['issuer']['id']}") == ids["issuer"]
    assert (await h.ok("GET", A))["name"] == "tenant-a"
    assert len((await h.ok("GET", f"{A}/environments"))["data"]) == 2
    # ...and A's own admin still sees everything of A.
    assert (await h.ok("GET", f"{A}/keys/{ids['key']['id']}", key=a_admin))["id"]
    assert len((await h.ok("GET", f"{A}/events", key=a_admin))["data"]) == 1


async def test_tenant_b_cannot_point_its_policies_at_tenant_a(admin: AdminHarness) -> None:
    h = admin
    for tenant in ("tenant-a", "tenant-b"):
        await h.tenant(tenant)
    a_key = await h.ok("POST", f"{A}/keys", {})
    b_admin = await h.tenant_admin("tenant-b")
    for path, body, keys in [
        (f"{B}/limits", {"scope": "key", "subject": a_key["id"], "rpm": 1}, (b_admin, None)),
        (
            f"{B}/budgets",
            {"scope": "key", "subject": a_key["id"], "period": "day", "limit_usd": 1},
            (b_admin, None),
        ),
        (f"{B}/limits", {"scope": "tenant", "subject": "tenant-a", "rpm": 1}, (None,)),
    ]:
        for key in keys:
            error = await h.error(400, "POST", path, body, key=key)
            assert error["param"] == "subject"
    assert (await h.ok("GET", f"{B}/limits"))["data"] == []
    await h.error(403, "POST", "/tenants", {"id": "tenant-c"}, key=b_admin)
    await h.error(403, "DELETE", B, key=b_admin)


async def test_each_admin_sees_its_own_tenant_and_the_operator_sees_all(
    admin: AdminHarness,
) -> None:
    h = admin
    for tenant in ("tenant-a", "tenant-b"):
        await h.tenant(tenant)
    a_admin, b_admin = await h.tenant_admin("tenant-a"), await h.tenant_admin("tenant-b")
    ids = await _tenant_a(h, a_admin)
    assert [t["id"] for t in (await h.ok("GET", "/tenants", key=b_admin))["data"]] == ["tenant-b"]
    assert [t["id"] for t in (await h.ok("GET", "/tenants"))["data"]] == ["tenant-a", "tenant-b"]
    own = await h.ok("GET", "/usage", key=b_admin)
    assert [r["request_id"] for r in own["data"]] == ["rb"]
    assert [
        r["request_id"] for r in (await h.ok("GET", "/usage?tenant=tenant-b", key=b_admin))["data"]
    ] == ["rb"]
    grouped = await h.ok("GET", "/usage?group_by=tenant", key=b_admin)
    assert [g["tenant"] for g in grouped["data"]] == ["tenant-b"]
    everything = await h.ok("GET", "/usage?group_by=tenant")
    assert [g["tenant"] for g in everything["data"]] == ["tenant-a", "tenant-b"]
    key_ids = [k["id"] for k in (await h.ok("GET", f"{B}/keys", key=b_admin))["data"]]
    assert ids["key"]["id"] not in key_ids
    assert (await h.ok("GET", f"{A}/keys/{ids['key']['id']}"))["tenant_id"] == "tenant-a"
