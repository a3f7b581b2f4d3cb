"""The provider vault over the admin API: every request is HMAC-signed and scoped.

Besides the admin key (checked by the guard like everywhere), each vault request must carry the
`x-relaygate-key-id/-timestamp/-signature` headers made with that same admin key's vault signing
secret, so a leaked bearer key alone cannot read the vault's metadata or change it, and a
captured request cannot be replayed. Issuing or rotating a signing secret is itself a signed
request (decision 0028): the operator's keys start from the root secret set on the gateway
(`RELAYGATE_ADMIN_SIGNING_SECRET`), every other admin key gets its first secret from a key that
already signs; a bearer key alone can neither obtain nor replace one. Tenant admin keys see and
manage only their tenant's secrets; operator secrets, grants and the KEK are the operator's.
Values go in and never come out: the API returns metadata only.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.checks import existing_environment
from relaygate.admin.context import AdminContext, AdminPrincipal, VaultAccess
from relaygate.admin.deps import (
    Caller,
    Ctx,
    not_found,
    operator_only,
    plausible,
    tenant_row,
    visible,
    writing,
)
from relaygate.admin.keys import signing_place
from relaygate.admin.schemas import (
    NAME,
    AdminIdentity,
    GrantCreate,
    GrantOut,
    KekRotated,
    Listing,
    SecretCreate,
    SecretOut,
    SecretRotate,
    SecretVersionOut,
    VaultSigningSecret,
    VaultSigningSecretIssue,
)
from relaygate.auth import signing_secrets
from relaygate.auth.credentials import signed_path, unauthorized
from relaygate.auth.failure import AuthFailed
from relaygate.auth.hmac_signing import HEADER_KEY_ID
from relaygate.auth.keys import new_key_id
from relaygate.auth.signing_secrets import SigningSecretExpired, new_secret_text
from relaygate.errors import GatewayError
from relaygate.store.tables import ApiKey, VaultGrant, VaultSecret, VaultVersion
from relaygate.vault.kms.base import KMSError
from relaygate.vault.sealer import SealError
from relaygate.vault.service import create_secret, rewrap_all, rotate_secret, rotation_status

router = APIRouter(prefix="/vault", tags=["vault"])
DUPLICATE = "this owner already has a secret with that name; rotate it instead"


def _access(ctx: AdminContext) -> VaultAccess:
    if ctx.vault is None:
        raise GatewayError(503, "the vault is not configured", code="vault_unavailable")
    return ctx.vault


HOW_TO_GET_ONE = (
    "an admin key gets its first vault signing secret from the operator"
    " (POST /admin/v1/vault/keys/{key_id}/signing-secret, signed); the operator's own keys sign"
    " with the secret set in RELAYGATE_ADMIN_SIGNING_SECRET on every gateway replica"
)
# What the caller (whose admin key is valid: the guard checked it) is told about a refused
# signature, so that a client whose secret was replaced knows it, instead of a bare 401.
REFUSALS: dict[str, tuple[str, str]] = {
    "signed request without all three signature headers": (
        "signature_required",
        "the vault API needs requests signed with this admin key's vault signing secret"
        " (x-relaygate-key-id, x-relaygate-timestamp, x-relaygate-signature): a bearer key"
        " alone is not enough; " + HOW_TO_GET_ONE,
    ),
    "unknown key id or key without a signing secret": (
        "no_signing_secret",
        "this admin key has no vault signing secret; " + HOW_TO_GET_ONE,
    ),
    "signature mismatch": (
        "invalid_signature",
        "the signature does not match any current vault signing secret of this admin key",
    ),
    "replayed signature": (
        "replayed_signature",
        "this signed request was already used; sign every request afresh",
    ),
    "timestamp outside the allowed skew": (
        "invalid_signature_timestamp",
        "x-relaygate-timestamp is more than 300 s away from the gateway's clock",
    ),
    "malformed timestamp": (
        "invalid_signature_timestamp",
        "x-relaygate-timestamp must be Unix seconds",
    ),
}


def refusal(exc: AuthFailed, key_id: str) -> GatewayError:
    """The 401 for a vault request whose signature was refused, saying why."""
    if isinstance(exc, SigningSecretExpired):
        ended = datetime.fromtimestamp(exc.expired_at, UTC).isoformat(timespec="seconds")
        code, message = (
            "signing_secret_expired",
            f"this request is signed with a vault signing secret of key {key_id} that was"
            f" replaced and stopped working at {ended}; sign with the key's current secret",
        )
    else:
        code, message = REFUSALS.get(
            exc.reason, ("invalid_signature", f"the request signature is malformed ({exc.reason})")
        )
    return GatewayError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


async def signed(request: Request, ctx: Ctx, caller: Caller) -> AdminPrincipal:
    """The caller, if this request is signed with the caller's own vault signing secret."""
    access = _access(ctx)
    body = await request.body()
    claimed = request.headers.get(HEADER_KEY_ID)
    if claimed is not None and claimed != caller.key_id:
        raise GatewayError(
            401,
            "x-relaygate-key-id must be the id of the admin key in Authorization"
            " (GET /admin/v1/vault/whoami tells it)",
            code="invalid_signature",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        key_id = await access.verify_signature(
            request.headers, request.method, signed_path(request.scope), body
        )
    except AuthFailed as exc:
        raise refusal(exc, caller.key_id) from None
    if key_id != caller.key_id:
        raise unauthorized()
    return caller


Signed = Annotated[AdminPrincipal, Depends(signed)]


def _actor(caller: AdminPrincipal) -> str:
    return f"admin:{caller.key_id}"


async def _secret(session: AsyncSession, caller: AdminPrincipal, secret_id: str) -> VaultSecret:
    row = await session.get(VaultSecret, secret_id) if plausible(secret_id) else None
    if row is None or (row.tenant_id is None and caller.tenant_id is not None):
        raise not_found("secret")
    if row.tenant_id is not None and not visible(caller, row.tenant_id):
        raise not_found("secret")
    return row


async def _out(session: AsyncSession, row: VaultSecret) -> SecretOut:
    versions = (
        (
            await session.execute(
                select(VaultVersion)
                .where(VaultVersion.secret_id == row.id)
                .order_by(VaultVersion.version)
            )
        )
        .scalars()
        .all()
    )
    grants = (
        (await session.execute(select(VaultGrant).where(VaultGrant.secret_id == row.id)))
        .scalars()
        .all()
    )
    due, status = rotation_status(row, datetime.now(UTC))
    return SecretOut(
        id=row.id,
        name=row.name,
        tenant_id=row.tenant_id,
        environment=row.environment,
        description=row.description,
        rotation_days=row.rotation_days,
        grace_s=row.grace_s,
        current_version=row.current_version,
        rotated_at=row.rotated_at,
        rotation_due_at=due,
        rotation_status=status,
        versions=[
            SecretVersionOut(
                version=v.version,
                state=v.state,
                kek_id=v.kek_id,
                kek_version=v.kek_version,
                created_at=v.created_at,
                retire_after=v.retire_after,
            )
            for v in versions
        ],
        grants=[GrantOut(tenant_id=g.tenant_id, environment=g.environment) for g in grants],
        created_at=row.created_at,
    )


@router.get("/whoami", summary="The calling admin key (bearer only: to find the key id to sign)")
async def whoami(caller: Caller) -> AdminIdentity:
    return AdminIdentity(key_id=caller.key_id, tenant_id=caller.tenant_id)


DEFAULT_ISSUE = VaultSigningSecretIssue()


async def _issue(
    ctx: AdminContext, caller: AdminPrincipal, key_id: str, overlap_s: int
) -> VaultSigningSecret:
    """A new vault signing secret for admin key `key_id`; its previous ones sign `overlap_s`
    more seconds. Only ever reached by a signed request (see `Signed`)."""
    now = time.time()
    secret = new_secret_text()
    async with writing(ctx) as session:
        row = await session.get(ApiKey, key_id) if plausible(key_id) else None
        if (
            row is None
            or row.kind != "admin"
            or row.revoked_at is not None
            or (caller.tenant_id is not None and row.tenant_id != caller.tenant_id)
        ):
            raise not_found("admin key")
        entries: tuple[signing_secrets.SigningSecret, ...] = ()
        if row.signing_secret:
            try:
                opened = ctx.sealer.open(row.signing_secret, signing_place(row.id))
                entries = signing_secrets.parse(opened)
            except (SealError, ValueError, KeyError, TypeError):
                entries = ()  # unreadable under this master key: nothing left to honour
        entries = signing_secrets.rotate(entries, secret.encode(), now, overlap_s)
        row.signing_secret = ctx.sealer.seal(signing_secrets.dump(entries), signing_place(row.id))
    previous = [e.expires_at for e in entries[:-1] if e.active(now) and e.expires_at is not None]
    if ctx.audit is not None:
        await ctx.audit.append(
            _actor(caller),
            "admin.signing_secret",
            f"key:{key_id}",
            tenant_id=row.tenant_id,
            detail={"overlap_s": overlap_s, "by": caller.key_id},
        )
    return VaultSigningSecret(
        key_id=key_id,
        signing_secret=secret,
        issued_at=datetime.fromtimestamp(now, UTC),
        previous_valid_until=datetime.fromtimestamp(max(previous), UTC) if previous else None,
    )


@router.post(
    "/signing-secret",
    summary="Rotate the calling admin key's vault signing secret (signed with a current one;"
    " the previous one keeps working for overlap_s, default 1 h; the new one is shown once)",
)
async def rotate_own_signing_secret(
    ctx: Ctx, caller: Signed, body: VaultSigningSecretIssue = DEFAULT_ISSUE
) -> VaultSigningSecret:
    overlap = body.overlap_s if body.overlap_s is not None else 3600
    return await _issue(ctx, caller, caller.key_id, overlap)


@router.post(
    "/keys/{key_id}/signing-secret",
    summary="Issue or replace another admin key's vault signing secret (signed; the operator for"
    " any admin key, a tenant admin for its tenant's; previous secrets stop at once unless"
    " overlap_s; shown once)",
)
async def issue_signing_secret(
    key_id: str, ctx: Ctx, caller: Signed, body: VaultSigningSecretIssue = DEFAULT_ISSUE
) -> VaultSigningSecret:
    overlap = body.overlap_s if body.overlap_s is not None else 0
    return await _issue(ctx, caller, key_id, overlap)


@router.post("/secrets", status_code=201, summary="Store a provider credential (value shown never)")
async def put_secret(body: SecretCreate, ctx: Ctx, caller: Signed) -> SecretOut:
    access = _access(ctx)
    if body.tenant_id is None:
        operator_only(caller, "store operator secrets")
    now = datetime.now(UTC)
    async with writing(ctx, DUPLICATE) as session:
        if body.tenant_id is not None:
            await tenant_row(session, caller, body.tenant_id)
            await existing_environment(session, body.tenant_id, body.environment or "")
        row = await create_secret(
            session,
            access.kek,
            secret_id="sec_" + new_key_id(),
            tenant_id=body.tenant_id,
            environment=body.environment,
            name=body.name,
            value=body.value.encode(),
            description=body.description,
            rotation_days=body.rotation_days or access.defaults.rotation_days,
            grace_s=access.defaults.grace_s if body.grace_s is None else body.grace_s,
            now=now,
        )
    await access.audit.append(
        _actor(caller),
        "vault.create",
        f"secret:{row.id}",
        tenant_id=row.tenant_id,
        detail={"name": row.name, "owner": row.owner, "version": 1},
    )
    async with ctx.sessions() as session:
        return await _out(session, row)


@router.get("/secrets", summary="List secrets' metadata")
async def list_secrets(
    ctx: Ctx,
    caller: Signed,
    tenant_id: Annotated[
        str | None, Query(pattern=NAME, max_length=64, description="only this tenant's secrets")
    ] = None,
) -> Listing[SecretOut]:
    _access(ctx)
    query = select(VaultSecret).order_by(VaultSecret.created_at, VaultSecret.id)
    if caller.tenant_id is not None:
        query = query.where(VaultSecret.tenant_id == caller.tenant_id)
    if tenant_id is not None:
        query = query.where(VaultSecret.tenant_id == tenant_id)
    async with ctx.sessions() as session:
        rows = (await session.execute(query)).scalars().all()
        return Listing(data=[await _out(session, row) for row in rows])


@router.get("/secrets/{secret_id}", summary="A secret's metadata, versions and rotation state")
async def show_secret(secret_id: str, ctx: Ctx, caller: Signed) -> SecretOut:
    _access(ctx)
    async with ctx.sessions() as session:
        return await _out(session, await _secret(session, caller, secret_id))


@router.post(
    "/secrets/{secret_id}/rotate",
    summary="Store a new value as the active version; the previous one is retired after grace",
)
async def rotate(secret_id: str, body: SecretRotate, ctx: Ctx, caller: Signed) -> SecretOut:
    access = _access(ctx)
    async with writing(ctx) as session:
        row = await _secret(session, caller, secret_id)
        version = await rotate_secret(
            session, access.kek, row, body.value.encode(), datetime.now(UTC), body.grace_s
        )
    await access.audit.append(
        _actor(caller),
        "vault.rotate",
        f"secret:{row.id}",
        tenant_id=row.tenant_id,
        detail={"name": row.name, "version": version, "grace_s": body.grace_s or row.grace_s},
    )
    async with ctx.sessions() as session:
        return await _out(session, row)


@router.post(
    "/secrets/{secret_id}/grants",
    status_code=201,
    summary="Grant an operator secret to a tenant's environment ('*': all of them)",
)
async def grant(secret_id: str, body: GrantCreate, ctx: Ctx, caller: Signed) -> SecretOut:
    access = _access(ctx)
    operator_only(caller, "grant operator secrets")
    async with writing(ctx, "this grant exists already") as session:
        row = await _secret(session, caller, secret_id)
        if row.tenant_id is not None:
            raise GatewayError(
                400, "only operator secrets are granted", param="secret_id", code="invalid_value"
            )
        await tenant_row(session, caller, body.tenant_id)
        if body.environment != "*":
            await existing_environment(session, body.tenant_id, body.environment)
        session.add(
            VaultGrant(
                secret_id=row.id,
                tenant_id=body.tenant_id,
                environment=body.environment,
                created_at=datetime.now(UTC),
            )
        )
    await access.audit.append(
        _actor(caller),
        "vault.grant",
        f"secret:{row.id}",
        tenant_id=body.tenant_id,
        detail={"name": row.name, "environment": body.environment},
    )
    async with ctx.sessions() as session:
        return await _out(session, row)


@router.delete(
    "/secrets/{secret_id}/grants/{tenant_id}/{environment}",
    summary="Revoke a grant; the tenant's requests stop using the secret within one refresh",
)
async def revoke(
    secret_id: str, tenant_id: str, environment: str, ctx: Ctx, caller: Signed
) -> SecretOut:
    access = _access(ctx)
    operator_only(caller, "revoke grants")
    if not plausible(tenant_id) or not (environment == "*" or plausible(environment)):
        raise not_found("grant")
    async with writing(ctx) as session:
        row = await _secret(session, caller, secret_id)
        result = await session.execute(
            delete(VaultGrant).where(
                VaultGrant.secret_id == row.id,
                VaultGrant.tenant_id == tenant_id,
                VaultGrant.environment == environment,
            )
        )
        if not getattr(result, "rowcount", 0):
            raise not_found("grant")
    await access.audit.append(
        _actor(caller),
        "vault.revoke",
        f"secret:{row.id}",
        tenant_id=tenant_id,
        detail={"name": row.name, "environment": environment},
    )
    async with ctx.sessions() as session:
        return await _out(session, row)


@router.post(
    "/kek/rotate",
    summary="Rotate the key-encryption key, rewrap every data key, retire the old KEK versions",
)
async def rotate_kek(ctx: Ctx, caller: Signed) -> KekRotated:
    access = _access(ctx)
    operator_only(caller, "rotate the key-encryption key")
    kek = access.kek
    try:
        version = await kek.rotate()
        async with writing(ctx) as session:
            rewrapped = await rewrap_all(session, kek)
        # Other replicas serve their previous snapshot (old wrappings) until their next reload.
        await asyncio.sleep(access.settle_s)
        await kek.retire_below(version)
    except KMSError as exc:
        raise GatewayError(
            409, f"cannot rotate the key-encryption key: {exc}", code="kms_error"
        ) from None
    access.clear_cache()
    await access.audit.append(
        _actor(caller),
        "vault.kek_rotate",
        f"kek:{kek.kek_id}",
        detail={"version": version, "rewrapped": rewrapped},
    )
    return KekRotated(
        kek_id=kek.kek_id, version=version, rewrapped=rewrapped, retired_below=version
    )
