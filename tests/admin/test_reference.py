"""The admin API's browsable reference: served by the gateway itself, public like the OpenAPI
document it is rendered from, complete, and loading nothing from anywhere (issue 31)."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from relaygate.admin.app import create_admin_app
from relaygate.admin.context import AdminContext
from relaygate.admin.reference import render_reference


def _unused_context() -> AdminContext:
    raise AssertionError("the reference needs no context")


async def test_the_reference_lists_every_operation_and_schema_without_external_assets() -> None:
    app = Starlette(routes=[Mount("/admin/v1", app=create_admin_app(_unused_context))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        page = await client.get("/admin/v1/reference")  # no admin key: it holds no data
        document = (await client.get("/admin/v1/openapi.json")).json()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == "default-src 'none'; style-src 'unsafe-inline'"
    html = page.text
    for path, methods in document["paths"].items():
        assert f'<span class="path">/admin/v1{path}</span>' in html, path
        for op in methods.values():
            assert f'id="{op["operationId"]}"' in html
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    assert 'href="/admin/v1/openapi.json"' in html
    # Nothing to fetch: no script, no image, no stylesheet link, no absolute URL in an attribute.
    assert "<script" not in html and "<img" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_text_from_the_document_is_escaped() -> None:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": "1", "description": "<script>alert(1)</script>"},
        "paths": {"/x": {"get": {"operationId": "x", "summary": "a <b> & c", "responses": {}}}},
    }
    html = render_reference(document, "/openapi.json")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "a &lt;b&gt; &amp; c" in html
