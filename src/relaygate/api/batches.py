"""OpenAI's Files and Batch APIs, so the SDK's batch flow works unchanged:
upload a JSONL file, create a batch, poll it, download the output and error files."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from relaygate.api.authn import authenticate
from relaygate.api.body import parse_json, read_body
from relaygate.api.checks import member, plausible_id
from relaygate.api.jobs import job_service
from relaygate.api.listing import page_args, page_response
from relaygate.api.responses import json_response
from relaygate.api.validation import validate_request
from relaygate.batches.files import FileStore, file_view, new_file
from relaygate.batches.lines import parse_lines
from relaygate.batches.store import WINDOWS, BatchStore, batch_not_found, batch_view
from relaygate.errors import GatewayError, bad_request
from relaygate.jobs.model import ENDPOINTS, metadata_of
from relaygate.jobs.store import Owner
from relaygate.state import Gateway, gateway
from relaygate.store.tables import Batch

KICK_AT_ONCE = 500  # the sweeper queues the rest of a large batch, a few hundred at a time


def _file_missing(file_id: str) -> GatewayError:
    return GatewayError(404, f"no file with id '{file_id[:64]}'", code="file_not_found")


async def upload_file(request: Request) -> Response:
    """POST /v1/files (multipart: `file`, `purpose=batch`)."""
    gw = gateway(request)
    limit = gw.config.batches.max_file_bytes
    raw = await read_body(request, limit, gw.config.server.body_timeout_s * 10)
    principal = await authenticate(request, gw, raw)

    async def replay() -> Message:
        return {"type": "http.request", "body": raw, "more_body": False}

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("upload the file as multipart/form-data", param="file")
    async with Request(request.scope, replay).form(
        max_files=1, max_fields=8, max_part_size=1024
    ) as form:
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose != "batch":
            raise bad_request("purpose must be 'batch'", param="purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request("a file part named 'file' is required", param="file")
        content = await upload.read()
        name = (upload.filename or "upload.jsonl")[:255]
    row = await FileStore(gw.sessions).add(new_file(principal.tenant_id, "batch", name, content))
    return json_response(file_view(row))


async def _file(request: Request) -> tuple[Gateway, FileStore, Any]:
    gw = gateway(request)
    principal = await authenticate(request, gw)
    store = FileStore(gw.sessions)
    file_id = request.path_params["file_id"]
    row = await store.get(file_id, principal.tenant_id) if plausible_id(file_id) else None
    if row is None:
        raise _file_missing(file_id)
    return gw, store, row


async def retrieve_file(request: Request) -> Response:
    """GET /v1/files/{id}."""
    _gw, _store, row = await _file(request)
    return json_response(file_view(row))


async def file_content(request: Request) -> Response:
    """GET /v1/files/{id}/content: the bytes as uploaded or written."""
    _gw, _store, row = await _file(request)
    return Response(row.content, media_type="application/octet-stream")


async def delete_file(request: Request) -> Response:
    """DELETE /v1/files/{id}."""
    _gw, store, row = await _file(request)
    await store.delete(row.id, row.tenant_id)
    return json_response({"id": row.id, "object": "file", "deleted": True})


async def list_files(request: Request) -> Response:
    """GET /v1/files?purpose=&limit=&after=."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    limit, after = page_args(request, 100, 10000)
    purpose = request.query_params.get("purpose")
    if purpose is not None and not plausible_id(purpose):
        raise bad_request("purpose must be a file purpose such as 'batch'", param="purpose")
    rows = await FileStore(gw.sessions).page(principal.tenant_id, purpose, limit + 1, after)
    return page_response([file_view(r) for r in rows[:limit]], len(rows) > limit)


async def create_batch(request: Request) -> Response:
    """POST /v1/batches: validate the input file and queue one job per line."""
    gw = gateway(request)
    server = gw.config.server
    raw = await read_body(request, server.max_body_bytes, server.body_timeout_s)
    principal = await authenticate(request, gw, raw)
    body = parse_json(raw)
    endpoint = body.get("endpoint")
    if not member(endpoint, ENDPOINTS):
        raise bad_request(
            f"endpoint must be one of {', '.join(sorted(ENDPOINTS))}", param="endpoint"
        )
    window = body.get("completion_window")
    if not member(window, WINDOWS):
        raise bad_request("completion_window must be '24h'", param="completion_window")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not plausible_id(file_id):
        raise bad_request("input_file_id is required (a file id)", param="input_file_id")
    unknown = sorted(set(body) - {"endpoint", "completion_window", "input_file_id", "metadata"})
    if unknown:
        raise bad_request(f"unknown field '{unknown[0]}'", param=unknown[0])
    metadata = metadata_of(body.get("metadata"))
    source = await FileStore(gw.sessions).get(file_id, principal.tenant_id)
    if source is None or source.purpose != "batch":
        raise bad_request(f"no batch input file with id '{file_id[:64]}'", param="input_file_id")
    bounds = gw.config.bounds
    lines, errors = parse_lines(
        source.content,
        endpoint,
        gw.config.batches.max_requests,
        lambda line: validate_request(endpoint, line, bounds, "body."),
    )
    owner = Owner.of(principal)
    jobs = job_service(gw)
    batch, job_ids = await BatchStore(gw.sessions).create(
        owner, endpoint, file_id, window, metadata, lines, errors, gw.config.jobs.max_attempts
    )
    for job_id in job_ids[:KICK_AT_ONCE]:
        await jobs.submit(job_id)
    return json_response(batch_view(batch, {}))


async def _batches(request: Request) -> tuple[BatchStore, str, str]:
    """The store, the caller's tenant and the batch id of the path."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    batch_id = request.path_params["batch_id"]
    if not plausible_id(batch_id):
        raise batch_not_found(batch_id)
    return BatchStore(gw.sessions), principal.tenant_id, batch_id


async def _answer(store: BatchStore, batch: Batch) -> Response:
    return json_response(batch_view(batch, (await store.counts([batch.id]))[batch.id]))


async def retrieve_batch(request: Request) -> Response:
    """GET /v1/batches/{id}: status, progress counts, files, cost."""
    store, tenant_id, batch_id = await _batches(request)
    batch = await store.get(batch_id, tenant_id)
    if batch is None:
        raise batch_not_found(batch_id)
    return await _answer(store, batch)


async def cancel_batch(request: Request) -> Response:
    """POST /v1/batches/{id}/cancel."""
    store, tenant_id, batch_id = await _batches(request)
    return await _answer(store, await store.cancel(batch_id, tenant_id))


async def list_batches(request: Request) -> Response:
    """GET /v1/batches?limit=&after=."""
    gw = gateway(request)
    principal = await authenticate(request, gw)
    limit, after = page_args(request, 20, 100)
    store = BatchStore(gw.sessions)
    rows = await store.page(principal.tenant_id, limit + 1, after)
    shown = rows[:limit]
    counts = await store.counts([b.id for b in shown])
    return page_response([batch_view(b, counts[b.id]) for b in shown], len(rows) > limit)
