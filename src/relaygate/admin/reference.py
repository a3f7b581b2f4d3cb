"""A browsable reference of the admin API, rendered from its OpenAPI document on the server.

Plain HTML with a little inline CSS: no script and nothing loaded from anywhere else, so it works
offline and behind a strict Content-Security-Policy (FastAPI's own pages load Swagger UI or ReDoc
from a CDN, which a self-hosted gateway must not depend on).
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,.path{font-family:ui-monospace,monospace}h2{margin-top:2.5rem;border-bottom:1px solid #ccc}
.op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}nav a{margin-right:.8rem}
"""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A short HTML description of a schema's type, linking named schemas."""
    if "$ref" in schema:
        name = escape(_ref_name(schema["$ref"]))
        return f'<a href="#schema-{name}">{name}</a>'
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(type_of(part) for part in schema[key])
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(value))}</code>" for value in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if "format" in schema:
        return escape(f"{kind} ({schema['format']})")
    return escape(kind)


def _fields(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return ""
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code>{' (required)' if name in required else ''}</td>"
        f"<td>{type_of(prop)}</td><td>{escape(str(prop.get('description', '')))}</td></tr>"
        for name, prop in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>meaning</th></tr>{rows}</table>"


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{escape(op.get("operationId", method + path))}">',
        f'<div><span class="method">{escape(method)}</span><span class="path">'
        f"{escape(path)}</span></div>",
        f"<p><b>{escape(op.get('summary', ''))}</b></p>",
    ]
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code>{' (required)' if p.get('required') else ''}"
            f"</td><td>{escape(p.get('in', ''))}</td><td>{type_of(p.get('schema', {}))}</td>"
            f"<td>{escape(str(p.get('description', '')))}</td></tr>"
            for p in params
        )
        parts.append(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>"
            f"{rows}</table>"
        )
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        parts.append(f"<p>Body: {type_of(body.get('schema', {}))}</p>")
    responses = "".join(
        f"<tr><td>{escape(code)}</td><td>{escape(answer.get('description', ''))}</td><td>"
        + " ".join(type_of(c.get("schema", {})) for c in answer.get("content", {}).values())
        + "</td></tr>"
        for code, answer in op.get("responses", {}).items()
    )
    parts.append(f"<table><tr><th>status</th><th>answer</th><th>body</th></tr>{responses}</table>")
    parts.append("</div>")
    return "".join(parts)


def render_reference(document: dict[str, Any], openapi_url: str) -> str:
    """The whole reference page for an OpenAPI 3 `document`."""
    info = document.get("info", {})
    base = document.get("servers", [{}])[0].get("url", "")
    by_tag: dict[str, list[str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(method, base + path, op))
    nav = "".join(f'<a href="#tag-{escape(tag)}">{escape(tag)}</a>' for tag in by_tag)
    sections = "".join(
        f'<h2 id="tag-{escape(tag)}">{escape(tag)}</h2>{"".join(ops)}'
        for tag, ops in by_tag.items()
    )
    schemas = "".join(
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>'
        f"<p>{escape(str(schema.get('description', '')))}</p>{_fields(schema)}"
        for name, schema in document.get("components", {}).get("schemas", {}).items()
    )
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        f'<p>Machine-readable: <a href="{escape(openapi_url)}">{escape(openapi_url)}</a>'
        f" (OpenAPI {escape(document.get('openapi', ''))}).</p><nav>{nav}"
        f'<a href="#schemas">schemas</a></nav>{sections}'
        f'<h2 id="schemas">Schemas</h2>{schemas}</body></html>'
    )
