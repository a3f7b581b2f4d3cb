"""GET /server/stats in-process: operator only; it says when nothing is counted. (The counting
itself is tested against a real gateway in tests/server/test_http_edges.py.)"""

from __future__ import annotations

from tests.admin.conftest import AdminHarness


async def test_the_counters_are_the_operators(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    error = await h.error(403, "GET", "/server/stats", key=await h.tenant_admin("acme"))
    assert error["code"] == "forbidden"
    # Under a plain ASGI transport no server counts anything, and the answer says so.
    assert await h.ok("GET", "/server/stats") == {
        "object": "server.stats",
        "counted": False,
        "pid": None,
        "since": None,
        "invalid_http_requests": None,
        "invalid_http_requests_by_reason": None,
        "body_disconnects": None,
    }
