"""The admin API's OpenAPI document, and Schemathesis driving the app in-process from it.

Schemathesis generates valid and invalid requests for every operation (as the operator, against
seeded objects); every answer must be free of server errors and match the documented status
codes, content types and schemas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from relaygate import __version__
from relaygate.admin.app import create_admin_app
from relaygate.admin.context import AdminContext
from relaygate.api import errors
from relaygate.store.database import migrate, sessionmaker
from relaygate.store.keys import KeyStore
from relaygate.vault.sealer import Sealer
from tests.admin.conftest import ROUTES, AdminKeys, vault_access_for_tests
from tests.admin.material import rsa_public_pem, usage_row, webhook_message_row

DOCUMENTED_ERRORS = {"400", "401", "403", "404", "409"}
MASTER_KEY = os.urandom(32)


def _unused_context() -> AdminContext:
    raise AssertionError("the OpenAPI document needs no context")


async def test_the_document_describes_every_operation() -> None:
    app = create_admin_app(_unused_context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        document = (await client.get("/openapi.json")).json()
        # No interactive docs: they would load assets from a CDN.
        assert (await client.get("/docs")).status_code == 401
    assert document["info"]["title"] == "Relaygate admin API"
    assert document["info"]["version"] == __version__
    assert document["servers"] == [{"url": "/admin/v1"}]
    paths = document["paths"]
    for expected in (
        "/tenants",
        "/tenants/{tenant_id}",
        "/tenants/{tenant_id}/environments",
        "/tenants/{tenant_id}/environments/{name}",
        "/tenants/{tenant_id}/keys",
        "/tenants/{tenant_id}/keys/{key_id}",
        "/tenants/{tenant_id}/keys/{key_id}/revoke",
        "/tenants/{tenant_id}/keys/{key_id}/rotate-signing-secret",
        "/tenants/{tenant_id}/limits",
        "/tenants/{tenant_id}/limits/{limit_id}",
        "/tenants/{tenant_id}/budgets",
        "/tenants/{tenant_id}/budgets/{budget_id}",
        "/tenants/{tenant_id}/jwt-issuers",
        "/tenants/{tenant_id}/jwt-issuers/{issuer_id}",
        "/tenants/{tenant_id}/events",
        "/usage",
    ):
        assert expected in paths, expected
    schemas = document["components"]["schemas"]
    operations = [(m, p, op) for p, item in paths.items() for m, op in item.items()]
    assert len(operations) >= 30
    for method, path, operation in operations:
        assert operation.get("summary"), (method, path)
        assert set(operation["responses"]) >= DOCUMENTED_ERRORS, (method, path)
        assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
        body = operation.get("requestBody")
        if body is not None:
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            assert schemas[ref]["additionalProperties"] is False, (method, path)
    error = schemas["ErrorEnvelope"]["properties"]["error"]["$ref"].rsplit("/", 1)[-1]
    assert set(schemas[error]["properties"]) == {"message", "type", "param", "code"}
    assert "text/csv" in paths["/usage"]["get"]["responses"]["200"]["content"]


def _engine(url: str) -> AsyncEngine:
    """No pooled connections: Schemathesis runs the app on its own event loop thread."""
    engine = create_async_engine(url, poolclass=NullPool)
    if url.startswith("sqlite"):

        def foreign_keys(connection: Any, _record: Any) -> None:
            connection.execute("PRAGMA foreign_keys=ON")

        event.listen(engine.sync_engine, "connect", foreign_keys)
    return engine


async def _seed(url: str, data_dir: Path) -> tuple[str, dict[str, str]]:
    """An operator key and a tenant with one object of each kind; returns the key and the ids."""
    engine = _engine(url)
    sessions = sessionmaker(engine)
    operator_key, _ = await KeyStore(sessions).create_key(None, kind="admin")
    keys = AdminKeys()
    await keys.reload(sessions)
    ((operator, _),) = keys.by_hash.values()
    app = create_admin_app(lambda: _context(sessions, keys, data_dir, operator.key_id))
    transport = httpx.ASGITransport(app=app)
    auth = {"Authorization": f"Bearer {operator_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://a", headers=auth) as c:

        async def post(path: str, body: dict[str, Any]) -> Any:
            response = await c.post(path, json=body)
            assert response.status_code == 201, response.text
            return response.json()

        await post("/tenants", {"id": "acme", "allowed_models": ["fast"]})
        await post("/tenants/acme/environments", {"name": "staging"})
        key = await post("/tenants/acme/keys", {"signing": True})
        limit = await post("/tenants/acme/limits", {"scope": "key", "subject": key["id"], "rpm": 1})
        budget = await post(
            "/tenants/acme/budgets", {"scope": "tenant", "period": "day", "limit_usd": 1}
        )
        issuer = await post(
            "/tenants/acme/jwt-issuers",
            {
                "issuer": "https://a",
                "audience": "a",
                "algorithm": "RS256",
                "keys": {"k": rsa_public_pem()},
            },
        )
        secret = await post("/vault/secrets", {"name": "openai", "value": "sk-contract-0"})
        await post(f"/vault/secrets/{secret['id']}/grants", {"tenant_id": "acme"})
        endpoint = await post(
            "/tenants/acme/webhook-endpoints", {"url": "https://wp.example/hooks"}
        )
    async with sessions.begin() as session:
        session.add(usage_row("r1", tenant="acme", key=key["id"], cost=0.5))
        session.add(webhook_message_row("msg_contract", "acme", endpoint["id"]))
    await engine.dispose()
    return operator_key, {
        "tenant_id": "acme",
        "name": "staging",
        "key_id": key["id"],
        "limit_id": limit["id"],
        "budget_id": budget["id"],
        "issuer_id": issuer["id"],
        "secret_id": secret["id"],
        "environment": "*",
        "endpoint_id": endpoint["id"],
        "message_id": "msg_contract",
        "request_id": "r1",
    }


def _context(sessions: Any, keys: AdminKeys, data_dir: Path, operator_id: str) -> AdminContext:
    async def reload_policy() -> None:
        await keys.reload(sessions)

    async def flush_usage() -> int:
        return 0

    access = vault_access_for_tests(sessions, data_dir)
    # The document is under test here, not HMAC verification (tests/vault signs for real):
    # every vault request counts as signed by the operator key that the seed created (found
    # before the run: the run creates more admin keys, in no particular order).

    async def signed_by_operator(*_args: object) -> str:
        return operator_id

    access = dataclasses.replace(access, verify_signature=signed_by_operator)
    return AdminContext(
        sessions=sessions,
        sealer=Sealer(MASTER_KEY),
        routes=ROUTES,
        reload_policy=reload_policy,
        flush_usage=flush_usage,
        authenticate_admin=keys.authenticate,
        vault=access,
        audit=access.audit,
    )


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    migrate(database_url)
    operator_key, ids = asyncio.run(_seed(database_url, tmp_path))
    yield database_url, operator_key, ids


def test_the_api_conforms_to_its_own_document(
    seeded: tuple[str, str, dict[str, str]], tmp_path: Path
) -> None:
    url, operator_key, ids = seeded
    engine = _engine(url)
    sessions = sessionmaker(engine)
    keys = AdminKeys()
    asyncio.run(keys.reload(sessions))
    ((operator, _),) = keys.by_hash.values()  # the seed's operator key, the only one so far
    # Mounted as the gateway mounts it: the document's server URL is /admin/v1.
    admin_app = create_admin_app(lambda: _context(sessions, keys, tmp_path, operator.key_id))
    # The gateway's own 404 handler: a path the mount cannot match (e.g. with a newline in an
    # id) still answers in the JSON envelope.
    app = Starlette(
        routes=[Mount("/admin/v1", app=admin_app)],
        exception_handlers={HTTPException: errors.http_error},
    )
    schema = schemathesis.openapi.from_asgi("/admin/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {operator_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Deletes last, so the other operations meet the seeded objects.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    succeeded: set[str] = set()
    tested = []
    for operation in operations:
        fixed = {name: ids[name] for name in ids if f"{{{name}}}" in operation.path}
        # Invalid requests need something to make invalid: a body or a query parameter.
        negatable = len(operation.body) > 0 or len(operation.query) > 0
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if negatable else [])]
        for mode in modes:
            strategy = operation.as_strategy(mode, path_parameters=fixed, headers=headers)

            @given(case=strategy)
            @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case: Case[Any]) -> None:
                response = case.call_and_validate(
                    headers=headers,
                    # Schema-valid bodies may still name models or keys that do not exist: a 400
                    # naming the field is the right answer there, not a violation.
                    excluded_checks=[positive_data_acceptance],
                )
                if response.status_code < 300:
                    succeeded.add(case.operation.label)

            try:
                check()
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (no body, fixed path ids).
                assert mode is GenerationMode.NEGATIVE, operation.label
        tested.append(operation.label)
    assert len(tested) >= 30
    # The run reached the handlers (not just 404s): every read of a seeded object succeeded.
    reads = {label for label in tested if label.startswith("GET ")}
    assert reads <= succeeded, reads - succeeded
