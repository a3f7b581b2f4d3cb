"""API keys: create (shown once), list, update, revoke, rotate the signing secret, delete."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.checks import existing_environment, known_models
from relaygate.admin.context import AdminPrincipal
from relaygate.admin.deps import Caller, Ctx, not_found, plausible, tenant_row, writing
from relaygate.admin.schemas import KeyCreate, KeyCreated, KeyOut, KeyUpdate, Listing, SigningSecret
from relaygate.auth.keys import display_prefix, generate_key, hash_key
from relaygate.errors import bad_request
from relaygate.store.tables import ApiKey, BudgetPolicy, LimitPolicy
from relaygate.vault.sealer import Sealer

router = APIRouter(tags=["keys"])


def key_out(row: ApiKey) -> KeyOut:
    """The API view of a key: never the key, its hash or its signing secret."""
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


def signing_place(key_id: str) -> str:
    """Where a key's sealed signing secret is bound (the sealer's associated data)."""
    return f"api_keys/{key_id}/signing"


def new_signing_secret(sealer: Sealer, key_id: str) -> tuple[str, str]:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return secret, sealer.seal(secret.encode(), signing_place(key_id))


async def key_row(
    session: AsyncSession, caller: AdminPrincipal, tenant_id: str, key_id: str
) -> ApiKey:
    """The tenant's key, if the caller may see the tenant; 404 otherwise."""
    await tenant_row(session, caller, tenant_id)
    row = await session.get(ApiKey, key_id) if plausible(key_id) else None
    if row is None or row.tenant_id != tenant_id:
        raise not_found("key")
    return row


def _future(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment <= datetime.now(UTC):
        raise bad_request("expires_at must be in the future", param="expires_at")
    return moment


def _no_signing_for_admin(kind: str, param: str | None) -> None:
    if kind == "admin":
        raise bad_request(
            "admin keys cannot sign requests: signing secrets are for tenant keys", param=param
        )


@router.post(
    "/tenants/{tenant_id}/keys",
    status_code=201,
    summary="Create a key; the key (and its signing secret) are in this answer only",
)
async def create_key(tenant_id: str, body: KeyCreate, ctx: Ctx, caller: Caller) -> KeyCreated:
    models = known_models(ctx, body.allowed_models, "allowed_models")
    expires_at = _future(body.expires_at)
    for flag in ("signing", "require_signature"):
        if getattr(body, flag):
            _no_signing_for_admin(body.kind, flag)
    if body.require_signature and not body.signing:
        raise bad_request(
            "require_signature needs a signing secret: set signing to true",
            param="require_signature",
        )
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        await existing_environment(session, tenant_id, body.environment)
        key, key_id = generate_key(body.environment, admin=body.kind == "admin")
        secret, sealed = new_signing_secret(ctx.sealer, key_id) if body.signing else (None, None)
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
            allowed_models=models,
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
                select(ApiKey)
                .where(ApiKey.tenant_id == tenant_id)
                .order_by(ApiKey.created_at, ApiKey.id)
            )
        ).scalars()
        return Listing[KeyOut](data=[key_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/keys/{key_id}", summary="Get a key")
async def get_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> KeyOut:
    async with ctx.sessions() as session:
        return key_out(await key_row(session, caller, tenant_id, key_id))


@router.patch("/tenants/{tenant_id}/keys/{key_id}", summary="Change a key's name, scopes or expiry")
async def update_key(
    tenant_id: str, key_id: str, body: KeyUpdate, ctx: Ctx, caller: Caller
) -> KeyOut:
    fields = body.model_fields_set
    models = known_models(ctx, body.allowed_models, "allowed_models")
    expires_at = _future(body.expires_at) if "expires_at" in fields else None
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        if body.require_signature:
            _no_signing_for_admin(row.kind, "require_signature")
            if row.signing_secret is None:
                raise bad_request(
                    "this key has no signing secret: rotate-signing-secret creates one",
                    param="require_signature",
                )
        if "expires_at" in fields:
            row.expires_at = expires_at
        if "allowed_models" in fields:
            row.allowed_models = models
        for name in ("max_tokens", "max_body_bytes"):
            if name in fields:
                setattr(row, name, getattr(body, name))
        if body.name is not None:
            row.name = body.name
        if body.require_signature is not None:
            row.require_signature = body.require_signature
    return key_out(row)


@router.post(
    "/tenants/{tenant_id}/keys/{key_id}/revoke",
    summary="Revoke a key (idempotent; every replica refuses it within the policy refresh"
    " interval; it stays listed for audit)",
)
async def revoke_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> KeyOut:
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
    return key_out(row)


@router.post(
    "/tenants/{tenant_id}/keys/{key_id}/rotate-signing-secret",
    summary="Create or replace the key's HMAC signing secret; the previous one stops working;"
    " the new one is in this answer only",
)
async def rotate_signing_secret(
    tenant_id: str, key_id: str, ctx: Ctx, caller: Caller
) -> SigningSecret:
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        _no_signing_for_admin(row.kind, None)
        secret, row.signing_secret = new_signing_secret(ctx.sealer, row.id)
    return SigningSecret(signing_secret=secret)


@router.delete(
    "/tenants/{tenant_id}/keys/{key_id}",
    status_code=204,
    summary="Delete a key and its key-scoped limits and budgets (revoke keeps it for audit)",
)
async def delete_key(tenant_id: str, key_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        row = await key_row(session, caller, tenant_id, key_id)
        for table in (LimitPolicy, BudgetPolicy):
            await session.execute(
                delete(table).where(
                    table.tenant_id == tenant_id, table.scope == "key", table.subject == row.id
                )
            )
        await session.delete(row)
