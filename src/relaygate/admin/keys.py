"""API keys: create (shown once), list, update, revoke, rotate the signing secret."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.deps import Caller, Ctx, not_found, tenant_row, writing
from relaygate.admin.schemas import KeyCreate, KeyCreated, KeyOut, KeyUpdate, Listing, SigningSecret
from relaygate.admin.tenants import check_models
from relaygate.auth.keys import display_prefix, generate_key, hash_key
from relaygate.errors import bad_request
from relaygate.store.tables import ApiKey, Environment
from relaygate.vault.sealer import Sealer

router = APIRouter(tags=["keys"])


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        tenant_id=row.tenant_id or "",
        environment=row.environment,
        kind=row.kind,
        name=row.name,
        display_prefix=row.display_prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        allowed_models=row.allowed_models,
        max_tokens=row.max_tokens,
        max_body_bytes=row.max_body_bytes,
        require_signature=row.require_signature,
        has_signing_secret=row.signing_secret is not None,
    )


def _new_signing_secret(sealer: Sealer, key_id: str) -> tuple[str, str]:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return secret, sealer.seal(secret.encode(), f"api_keys/{key_id}/signing")


async def key_row(session: AsyncSession, caller: Caller, tenant_id: str, key_id: str) -> ApiKey:
    await tenant_row(session, caller, tenant_id)
    row = await session.get(ApiKey, key_id)
    if row is None or row.tenant_id != tenant_id:
        raise not_found("key")
    return row


def _future(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment <= datetime.now(UTC):
        raise bad_request("expires_at must be in the future", param="expires_at")
    return moment


@router.post(
    "/tenants/{tenant_id}/keys",
    status_code=201,
    summary="Create a key; the key (and signing secret) are in this answer only",
)
async def create_key(tenant_id: str, body: KeyCreate, ctx: Ctx, caller: Caller) -> KeyCreated:
    check_models(ctx, body.allowed_models)
    expires_at = _future(body.expires_at)
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        if await session.get(Environment, (tenant_id, body.environment)) is None:
            raise bad_request(
                f"environment {body.environment!r} does not exist", param="environment"
            )
        key, key_id = generate_key(body.environment, admin=body.kind == "admin")
        secret, sealed = _new_signing_secret(ctx.sealer, key_id) if body.signing else (None, None)
        row = ApiKey(
            id=key_id,
            tenant_id=tenant_id,
            environment=body.environment,
            kind=body.kind,
            key_hash=hash_key(key),
            display_prefix=display_prefix(key),
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            name=body.name,
            allowed_models=body.allowed_models,
            max_tokens=body.max_tokens,
            max_body_bytes=body.max_body_bytes,
            require_signature=body.require_signature,
            signing_secret=sealed,
        )
        session.add(row)
    return KeyCreated(**key_out(row).model_dump(), key=key, signing_secret=secret)


@router.get("/tenants/{tenant_id}/keys", summary="List a tenant's keys (never the keys themselves)")
async def list_keys(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[KeyOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
            )
        ).scalars()
        return Listing[KeyOut](data=[key_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/keys/{key_id}", summary="Get a key")
async def get_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> KeyOut:
    async with ctx.sessions() as session:
        return key_out(await key_row(session, caller, tenant_id, key_id))


@router.patch("/tenants/{tenant_id}/keys/{key_id}", summary="Change a key's scopes or expiry")
async def update_key(
    tenant_id: str, key_id: str, body: KeyUpdate, ctx: Ctx, caller: Caller
) -> KeyOut:
    check_models(ctx, body.allowed_models)
    fields = body.model_fields_set
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        if "expires_at" in fields:
            row.expires_at = _future(body.expires_at)
        for name in ("name", "allowed_models", "max_tokens", "max_body_bytes"):
            if name in fields:
                setattr(row, name, getattr(body, name))
        if "require_signature" in fields and body.require_signature is not None:
            row.require_signature = body.require_signature
    return key_out(row)


@router.post(
    "/tenants/{tenant_id}/keys/{key_id}/revoke",
    summary="Revoke a key (every replica refuses it within the policy refresh interval)",
)
async def revoke_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> KeyOut:
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
    return key_out(row)


@router.post(
    "/tenants/{tenant_id}/keys/{key_id}/rotate-signing-secret",
    summary="Replace the key's HMAC signing secret; the new one is in this answer only",
)
async def rotate_signing_secret(
    tenant_id: str, key_id: str, ctx: Ctx, caller: Caller
) -> SigningSecret:
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        secret, row.signing_secret = _new_signing_secret(ctx.sealer, row.id)
    return SigningSecret(signing_secret=secret)


@router.delete(
    "/tenants/{tenant_id}/keys/{key_id}",
    status_code=204,
    summary="Delete a key (revoke keeps it listed for audit; delete removes it)",
)
async def delete_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await session.delete(await key_row(session, caller, tenant_id, key_id))
