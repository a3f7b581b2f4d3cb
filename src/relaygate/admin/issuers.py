"""JWT issuers: a site that mints short-lived tokens for its browser users."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from relaygate.admin.checks import existing_environment
from relaygate.admin.deps import Caller, Ctx, conflict, owned, tenant_row, writing
from relaygate.admin.schemas import IssuerCreate, IssuerOut, Listing
from relaygate.auth.jwt_tokens import load_issuer_key
from relaygate.auth.keys import new_key_id
from relaygate.errors import bad_request
from relaygate.store.tables import JwtIssuerRecord
from relaygate.vault.sealer import Sealer

router = APIRouter(tags=["JWT issuers"])
DUPLICATE = "this issuer is already registered"


def issuer_out(row: JwtIssuerRecord) -> IssuerOut:
    """The API view of an issuer: kids and public keys, never an HS256 secret."""
    public = {} if row.algorithm == "HS256" else {k: str(v) for k, v in row.keys.items()}
    return IssuerOut(
        id=row.id,
        tenant_id=row.tenant_id,
        issuer=row.issuer,
        audience=row.audience,
        algorithm=row.algorithm,
        environment=row.environment,
        kids=sorted(row.keys),
        public_keys=public,
        created_at=row.created_at,
    )


def issuer_key_place(issuer_id: str, kid: str) -> str:
    """Where an issuer's sealed HS256 secret is bound (the sealer's associated data)."""
    return f"jwt_issuers/{issuer_id}/{kid}"


def _base64url(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _material(algorithm: str, given: str, param: str) -> bytes | str:
    """What `load_issuer_key` takes: an HS256 secret's bytes, or the PEM text."""
    if algorithm != "HS256":
        return given
    try:
        return _base64url(given.strip())
    except (binascii.Error, ValueError):
        raise bad_request(f"{param}: HS256 secrets are given as base64url", param=param) from None


def _stored_keys(body: IssuerCreate, issuer_id: str, sealer: Sealer) -> dict[str, str]:
    """Each key checked for the issuer's algorithm; HS256 secrets sealed, PEMs as given."""
    stored: dict[str, str] = {}
    for kid, given in body.keys.items():
        param = f"keys.{kid}"
        material = _material(body.algorithm, given, param)
        try:
            load_issuer_key(body.algorithm, material)
        except ValueError as exc:
            raise bad_request(f"{param}: {exc}", param=param) from None
        if isinstance(material, bytes):
            stored[kid] = sealer.seal(material, issuer_key_place(issuer_id, kid))
        else:
            stored[kid] = material
    return stored


@router.post(
    "/tenants/{tenant_id}/jwt-issuers",
    status_code=201,
    summary="Register a JWT issuer with one fixed algorithm and its keys",
)
async def create_issuer(tenant_id: str, body: IssuerCreate, ctx: Ctx, caller: Caller) -> IssuerOut:
    issuer_id = new_key_id()
    async with writing(ctx, DUPLICATE) as session:
        await tenant_row(session, caller, tenant_id)
        stored = _stored_keys(body, issuer_id, ctx.sealer)
        await existing_environment(session, tenant_id, body.environment)
        taken = await session.execute(
            select(JwtIssuerRecord.id).where(JwtIssuerRecord.issuer == body.issuer)
        )
        if taken.first() is not None:
            raise conflict(DUPLICATE)
        row = JwtIssuerRecord(
            id=issuer_id,
            tenant_id=tenant_id,
            environment=body.environment,
            issuer=body.issuer,
            audience=body.audience,
            algorithm=body.algorithm,
            keys=stored,
            created_at=datetime.now(UTC),
        )
        session.add(row)
    return issuer_out(row)


@router.get("/tenants/{tenant_id}/jwt-issuers", summary="List a tenant's JWT issuers")
async def list_issuers(tenant_id: str, ctx: Ctx, caller: Caller) -> Listing[IssuerOut]:
    async with ctx.sessions() as session:
        await tenant_row(session, caller, tenant_id)
        rows = (
            await session.execute(
                select(JwtIssuerRecord)
                .where(JwtIssuerRecord.tenant_id == tenant_id)
                .order_by(JwtIssuerRecord.created_at, JwtIssuerRecord.id)
            )
        ).scalars()
        return Listing[IssuerOut](data=[issuer_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/jwt-issuers/{issuer_id}", summary="Get a JWT issuer")
async def get_issuer(tenant_id: str, issuer_id: str, ctx: Ctx, caller: Caller) -> IssuerOut:
    async with ctx.sessions() as session:
        return issuer_out(
            await owned(session, caller, tenant_id, JwtIssuerRecord, issuer_id, "JWT issuer")
        )


@router.delete(
    "/tenants/{tenant_id}/jwt-issuers/{issuer_id}",
    status_code=204,
    summary="Remove a JWT issuer (its tokens are refused within the policy refresh interval)",
)
async def delete_issuer(tenant_id: str, issuer_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        row = await owned(session, caller, tenant_id, JwtIssuerRecord, issuer_id, "JWT issuer")
        await session.delete(row)
