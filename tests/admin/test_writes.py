"""Every successful write bumps the policy version and reloads the gateway's policy; a refused
write does neither."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import AdminHarness
from tests.admin.material import rsa_public_pem


async def test_each_write_bumps_the_version_and_reloads_once(admin: AdminHarness) -> None:
    h = admin
    state: dict[str, Any] = {}

    async def write(method: str, path: str, body: Any = None) -> Any:
        version, reloads = await h.policy_version(), h.reloads
        result = await h.ok(method, path, body)
        assert await h.policy_version() == version + 1, (method, path)
        assert h.reloads == reloads + 1, (method, path)
        return result

    await write("POST", "/tenants", {"id": "acme"})
    await write("PATCH", "/tenants/acme", {"name": "ACME"})
    await write("POST", "/tenants/acme/environments", {"name": "staging"})
    state["key"] = (await write("POST", "/tenants/acme/keys", {"signing": True}))["id"]
    key_path = f"/tenants/acme/keys/{state['key']}"
    await write("PATCH", key_path, {"max_tokens": 10})
    await write("POST", f"{key_path}/rotate-signing-secret")
    limit = await write("POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 1})
    await write("PATCH", f"/tenants/acme/limits/{limit['id']}", {"rpm": 2})
    budget = await write(
        "POST", "/tenants/acme/budgets", {"scope": "tenant", "period": "day", "limit_usd": 1}
    )
    await write("PATCH", f"/tenants/acme/budgets/{budget['id']}", {"alert": True})
    issuer = await write(
        "POST",
        "/tenants/acme/jwt-issuers",
        {
            "issuer": "https://a",
            "audience": "a",
            "algorithm": "RS256",
            "keys": {"k": rsa_public_pem()},
        },
    )
    await write("DELETE", f"/tenants/acme/jwt-issuers/{issuer['id']}")
    await write("DELETE", f"/tenants/acme/budgets/{budget['id']}")
    await write("DELETE", f"/tenants/acme/limits/{limit['id']}")
    await write("POST", f"{key_path}/revoke")
    await write("DELETE", key_path)
    await write("DELETE", "/tenants/acme/environments/staging")
    await write("DELETE", "/tenants/acme")


async def test_refused_writes_change_nothing(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    await h.ok("POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 1})
    mine = await h.tenant_admin("acme")
    version, reloads = await h.policy_version(), h.reloads
    await h.error(409, "POST", "/tenants", {"id": "acme"})
    await h.error(409, "POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 5})
    await h.error(400, "POST", "/tenants/acme/keys", {"environment": "nope"})
    await h.error(404, "DELETE", "/tenants/acme/keys/nokey")
    await h.error(403, "DELETE", "/tenants/acme", key=mine)
    await h.error(400, "POST", "/tenants/acme/budgets", {"scope": "tenant"})
    assert await h.policy_version() == version
    assert h.reloads == reloads
    assert (await h.ok("GET", "/tenants/acme/keys"))["data"][0]["kind"] == "admin"
