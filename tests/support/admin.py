"""The admin API of a running gateway, as the operator (for end-to-end tests)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.gateway import ADMIN_KEY, RunningGateway


class Admin:
    """Operator calls that must succeed (anything else fails the test with the body)."""

    def __init__(self, gw: RunningGateway) -> None:
        self.base = gw.base_url + "/admin/v1"
        self.headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.base + path, json=body, headers=self.headers)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def tenant(self, **fields: Any) -> str:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        self.call("POST", "/tenants", {"id": tenant, "name": tenant, **fields})
        return tenant

    def key(self, tenant: str, **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.call("POST", f"/tenants/{tenant}/keys", fields)
        return created
