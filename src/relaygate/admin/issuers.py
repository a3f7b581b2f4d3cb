"""JWT issuers: a site that mints short-lived tokens for its browser users."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.admin.deps import Caller, Ctx, conflict, not_found, tenant_row, writing
from relaygate.admin.schemas import IssuerCreate, IssuerOut, Listing
from relaygate.auth.jwt_tokens import load_issuer_key
from relaygate.auth.keys import new_key_id
from relaygate.errors import bad_request
from relaygate.store.tables import Environment, JwtIssuerRecord
from relaygate.vault.sealer import Sealer

router = APIRouter(tags=["JWT issuers"])


def issuer_out(row: JwtIssuerRecord) -> IssuerOut:
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


def _stored_keys(body: IssuerCreate, issuer_id: str, sealer: Sealer) -> dict[str, str]:
    stored: dict[str, str] = {}
    for kid, material in body.keys.items():
        if not kid or len(kid) > 128:
            raise bad_request("key ids must be 1-128 characters", param="keys")
        try:
            if body.algorithm == "HS256":
                padded = material + "=" * (-len(material) % 4)
                secret = base64.urlsafe_b64decode(padded.encode())
                load_issuer_key("HS256", secret)
                stored[kid] = sealer.seal(secret, f"jwt_issuers/{issuer_id}/{kid}")
            else:
                load_issuer_key(body.algorithm, material)
                stored[kid] = material
        except binascii.Error:
            raise bad_request(f"keys.{kid}: not base64url", param=f"keys.{kid}") from None
        except ValueError as exc:
            # load_issuer_key's messages describe the key's type, never its contents.
            raise bad_request(f"keys.{kid}: {exc}", param=f"keys.{kid}") from None
    return stored


async def _issuer_row(
    session: AsyncSession, caller: Caller, tenant_id: str, issuer_id: str
) -> JwtIssuerRecord:
    await tenant_row(session, caller, tenant_id)
    row = await session.get(JwtIssuerRecord, issuer_id)
    if row is None or row.tenant_id != tenant_id:
        raise not_found("JWT issuer")
    return row


@router.post(
    "/tenants/{tenant_id}/jwt-issuers",
    status_code=201,
    summary="Register a JWT issuer with one fixed algorithm and its keys",
)
async def create_issuer(tenant_id: str, body: IssuerCreate, ctx: Ctx, caller: Caller) -> IssuerOut:
    issuer_id = new_key_id()
    stored = _stored_keys(body, issuer_id, ctx.sealer)
    async with writing(ctx) as session:
        await tenant_row(session, caller, tenant_id)
        if await session.get(Environment, (tenant_id, body.environment)) is None:
            raise bad_request(
                f"environment {body.environment!r} does not exist", param="environment"
            )
        taken = await session.execute(
            select(JwtIssuerRecord.id).where(JwtIssuerRecord.issuer == body.issuer)
        )
        if taken.first() is not None:
            raise conflict("this issuer is already registered")
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
                .order_by(JwtIssuerRecord.created_at)
            )
        ).scalars()
        return Listing[IssuerOut](data=[issuer_out(r) for r in rows])


@router.get("/tenants/{tenant_id}/jwt-issuers/{issuer_id}", summary="Get a JWT issuer")
async def get_issuer(tenant_id: str, issuer_id: str, ctx: Ctx, caller: Caller) -> IssuerOut:
    async with ctx.sessions() as session:
        return issuer_out(await _issuer_row(session, caller, tenant_id, issuer_id))


@router.delete(
    "/tenants/{tenant_id}/jwt-issuers/{issuer_id}", status_code=204, summary="Remove a JWT issuer"
)
async def delete_issuer(tenant_id: str, issuer_id: str, ctx: Ctx, caller: Caller) -> None:
    async with writing(ctx) as session:
        await session.delete(await _issuer_row(session, caller, tenant_id, issuer_id))
