"""Who may call the admin API: one 401 for every bad credential, 403 for operator-only actions."""

from __future__ import annotations

import httpx

from relaygate.auth.failure import PUBLIC_MESSAGE
from tests.admin.conftest import AdminHarness

EXPECTED_401 = {
    "error": {
        "message": PUBLIC_MESSAGE,
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == EXPECTED_401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_missing_wrong_and_data_plane_keys_get_the_same_401(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    data_key = (await h.ok("POST", "/tenants/acme/keys", {}))["key"]
    revoked = await h.ok("POST", "/tenants/acme/keys", {"kind": "admin"})
    await h.ok("POST", f"/tenants/acme/keys/{revoked['id']}/revoke")
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {h.operator_key}"},
        {"Authorization": f"Bearer {h.operator_key}x"},
        {"api-key": "nope"},
        {"Authorization": f"Bearer {data_key}"},
        {"api-key": data_key},
        {"Authorization": f"Bearer {revoked['key']}"},
    ):
        _assert_401(await h.client.get("/tenants", headers=headers))
    ok = await h.client.get("/tenants", headers={"api-key": h.operator_key})
    assert ok.status_code == 200


async def test_nothing_is_revealed_before_authentication(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    for method, path, content in (
        ("GET", "/no/such/path", None),
        ("PUT", "/tenants", None),
        ("POST", "/tenants", b"{broken"),
        ("GET", "/tenants/acme", None),
        ("DELETE", "/tenants/acme", None),
        ("GET", "/usage?limit=-1", None),
    ):
        _assert_401(await h.client.request(method, path, content=content))
    assert (await h.ok("GET", "/tenants/acme"))["id"] == "acme"
    document = await h.client.get("/openapi.json")
    assert document.status_code == 200 and document.json()["info"]["title"] == "Relaygate admin API"


async def test_errors_after_authentication_use_the_envelope(admin: AdminHarness) -> None:
    h = admin
    unknown_path = await h.error(404, "GET", "/no/such/path")
    assert unknown_path["type"] == "not_found_error"
    wrong_method = await h.error(405, "PUT", "/tenants")
    assert wrong_method["type"] == "invalid_request_error"


async def test_tenant_admins_cannot_create_or_delete_tenants(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    mine = await h.tenant_admin("acme")
    for method, path, body in (
        ("POST", "/tenants", {"id": "new"}),
        ("DELETE", "/tenants/acme", None),
    ):
        error = await h.error(403, method, path, body, key=mine)
        assert error["type"] == "permission_error" and error["code"] == "forbidden"
    assert [t["id"] for t in (await h.ok("GET", "/tenants"))["data"]] == ["acme"]
