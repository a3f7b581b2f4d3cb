"""Request and response bodies of the admin API (requests forbid unknown keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


class Body(BaseModel):
    """Base of every request body."""

    model_config = ConfigDict(extra="forbid")


class TenantCreate(Body):
    id: str = Field(pattern=NAME, max_length=64)
    name: str | None = Field(None, max_length=200)
    allowed_models: list[str] | None = None


class TenantUpdate(Body):
    name: str | None = Field(None, max_length=200)
    allowed_models: list[str] | None = None


class TenantOut(BaseModel):
    id: str
    name: str
    allowed_models: list[str] | None
    created_at: UtcDateTime


class EnvironmentCreate(Body):
    name: str = Field(pattern=NAME, max_length=64)


class EnvironmentOut(BaseModel):
    tenant_id: str
    name: str
    created_at: UtcDateTime


class KeyCreate(Body):
    environment: str = Field("production", pattern=NAME, max_length=64)
    name: str | None = Field(None, max_length=200)
    kind: Literal["tenant", "admin"] = "tenant"
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    max_tokens: int | None = Field(None, gt=0)
    max_body_bytes: int | None = Field(None, gt=0)
    require_signature: bool = False
    signing: bool = False


class KeyUpdate(Body):
    name: str | None = Field(None, max_length=200)
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    max_tokens: int | None = Field(None, gt=0)
    max_body_bytes: int | None = Field(None, gt=0)
    require_signature: bool | None = None


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    environment: str
    kind: str
    name: str | None
    display_prefix: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    allowed_models: list[str] | None
    max_tokens: int | None
    max_body_bytes: int | None
    require_signature: bool
    has_signing_secret: bool


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. Shown once: store it now.")
    signing_secret: str | None = Field(
        None, description="The HMAC signing secret (base64url), when requested. Shown once."
    )


class SigningSecret(BaseModel):
    signing_secret: str


Scope = Literal["tenant", "key", "user"]


class LimitCreate(Body):
    scope: Scope
    subject: str | None = Field(None, min_length=1, max_length=256)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _something_limited(self) -> LimitCreate:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError("set at least one of rpm, tpm, concurrency")
        return self


class LimitUpdate(Body):
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)


class LimitOut(BaseModel):
    id: str
    tenant_id: str
    scope: str
    subject: str
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    created_at: UtcDateTime


class BudgetCreate(Body):
    scope: Scope
    subject: str | None = Field(None, min_length=1, max_length=256)
    period: Literal["day", "month"]
    limit_usd: float = Field(gt=0)
    hard: bool = True
    downgrade_to: str | None = None
    alert: bool = False

    @model_validator(mode="after")
    def _downgrade_is_soft(self) -> BudgetCreate:
        if self.hard and self.downgrade_to:
            raise ValueError("downgrade_to applies to soft budgets (hard: false) only")
        return self


class BudgetUpdate(Body):
    limit_usd: float | None = Field(None, gt=0)
    hard: bool | None = None
    downgrade_to: str | None = None
    alert: bool | None = None


class BudgetOut(BaseModel):
    id: str
    tenant_id: str
    scope: str
    subject: str
    period: str
    limit_usd: float
    hard: bool
    downgrade_to: str | None
    alert: bool
    created_at: UtcDateTime


class IssuerCreate(Body):
    issuer: str = Field(min_length=1, max_length=256)
    audience: str = Field(min_length=1, max_length=256)
    algorithm: Literal["HS256", "RS256", "ES256"]
    environment: str = Field("production", pattern=NAME, max_length=64)
    keys: dict[str, str] = Field(
        min_length=1,
        description="kid -> a PEM public key (RS256/ES256) or a base64url secret of 32+ bytes"
        " (HS256)",
    )


class IssuerOut(BaseModel):
    id: str
    tenant_id: str
    issuer: str
    audience: str
    algorithm: str
    environment: str
    kids: list[str]
    public_keys: dict[str, str]
    created_at: UtcDateTime


class EventOut(BaseModel):
    id: int
    tenant_id: str
    budget_id: str
    subject_id: str
    period_key: str
    kind: str
    spent_usd: float
    limit_usd: float
    created_at: UtcDateTime


T = TypeVar("T")


class Listing(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
