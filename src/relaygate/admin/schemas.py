"""Request and response bodies of the admin API (requests forbid unknown keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"
INT32_MAX = 2_147_483_647
INT64_MAX = 9_223_372_036_854_775_807
MAX_USD = 1_000_000_000.0


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    return False


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string")
    return value


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
Moment = Annotated[datetime, BeforeValidator(_iso_text)]
# JSON types are taken as they are: `true` is not 1, "5" is not 5.
Count = Annotated[int, Strict(), Field(gt=0, le=INT32_MAX)]
Usd = Annotated[float, Strict(), Field(gt=0, le=MAX_USD)]
Flag = Annotated[bool, Strict()]
ModelName = Annotated[str, Field(min_length=1, max_length=128)]
Models = Annotated[
    list[ModelName],
    Field(max_length=256, description="Route or model names clients may use (null: no limit)"),
]
EnvName = Annotated[str, Field(pattern=NAME, max_length=64)]
Kid = Annotated[str, Field(min_length=1, max_length=128)]
KeyMaterial = Annotated[str, Field(min_length=1, max_length=16384)]


class Body(BaseModel):
    """Base of every request body: unknown keys and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _contains_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class TenantCreate(Body):
    """A new tenant; its `production` environment is created with it."""

    id: str = Field(pattern=NAME, max_length=64)
    name: str | None = Field(None, min_length=1, max_length=200, description="Defaults to the id")
    allowed_models: Models | None = None


class TenantUpdate(Body):
    """Fields to change; absent fields stay as they are (`allowed_models: null` lifts the list)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    allowed_models: Models | None = None


class TenantOut(BaseModel):
    """A tenant."""

    id: str
    name: str
    allowed_models: list[str] | None
    created_at: UtcDateTime


class EnvironmentCreate(Body):
    """A new environment of a tenant."""

    name: EnvName


class EnvironmentOut(BaseModel):
    """An environment of a tenant."""

    tenant_id: str
    name: str
    created_at: UtcDateTime


class KeyCreate(Body):
    """A new API key of a tenant."""

    environment: EnvName = "production"
    name: str | None = Field(None, min_length=1, max_length=200)
    kind: Literal["tenant", "admin"] = Field(
        "tenant", description="tenant: the data plane; admin: this API, for this tenant only"
    )
    expires_at: Moment | None = Field(None, description="Must be in the future")
    allowed_models: Models | None = Field(
        None, description="Within the tenant's; null: the tenant's"
    )
    max_tokens: Count | None = None
    max_body_bytes: Count | None = None
    require_signature: Flag = Field(False, description="Refuse the bare key: signed requests only")
    signing: Flag = Field(False, description="Create an HMAC signing secret (shown once)")


class KeyUpdate(Body):
    """Fields to change; absent fields stay as they are, null clears a limit."""

    name: str | None = Field(None, min_length=1, max_length=200)
    expires_at: Moment | None = Field(None, description="Must be in the future; null: never")
    allowed_models: Models | None = None
    max_tokens: Count | None = None
    max_body_bytes: Count | None = None
    require_signature: Flag | None = None


class KeyOut(BaseModel):
    """An API key as listed: never the key, its hash or its signing secret."""

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
    """A key just created, with its plaintext (and signing secret): shown in this answer only."""

    key: str = Field(description="The API key. Shown once: store it now.")
    signing_secret: str | None = Field(
        None, description="The HMAC signing secret (base64url), when requested. Shown once."
    )


class SigningSecret(BaseModel):
    """A new signing secret (base64url of 32 random bytes); the previous one stops working."""

    signing_secret: str


Scope = Literal["tenant", "key", "user"]
SUBJECT_HELP = (
    "tenant: the tenant id (or omit); key: a key id of this tenant; user: an end-user id, or '*'"
    " for every end user"
)


class LimitCreate(Body):
    """A rate limit; at least one of rpm, tpm, concurrency."""

    scope: Scope
    subject: str | None = Field(None, min_length=1, max_length=256, description=SUBJECT_HELP)
    rpm: Count | None = None
    tpm: Count | None = None
    concurrency: Count | None = None

    @model_validator(mode="after")
    def _something_limited(self) -> LimitCreate:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError("set at least one of rpm, tpm, concurrency")
        return self


class LimitUpdate(Body):
    """Fields to change; null lifts that limit (one must remain)."""

    rpm: Count | None = None
    tpm: Count | None = None
    concurrency: Count | None = None


class LimitOut(BaseModel):
    """A rate limit."""

    id: str
    tenant_id: str
    scope: str
    subject: str
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    created_at: UtcDateTime


PACE_HELP = (
    "spend evenly over the period: routing favours cheaper deployments when ahead of pace, faster"
    " ones when behind"
)


class BudgetCreate(Body):
    """A spend cap in USD per UTC day or month."""

    scope: Scope
    subject: str | None = Field(None, min_length=1, max_length=256, description=SUBJECT_HELP)
    period: Literal["day", "month"]
    limit_usd: Usd
    hard: Flag = Field(True, description="true: refuse at the cap; false: alert and/or downgrade")
    downgrade_to: ModelName | None = Field(None, description="A route; soft budgets only")
    alert: Flag = False
    pace: Flag = Field(False, description=PACE_HELP)


class BudgetUpdate(Body):
    """Fields to change; `downgrade_to: null` removes the downgrade."""

    limit_usd: Usd | None = None
    hard: Flag | None = None
    downgrade_to: ModelName | None = None
    alert: Flag | None = None
    pace: Flag | None = Field(None, description=PACE_HELP)


class BudgetOut(BaseModel):
    """A budget."""

    id: str
    tenant_id: str
    scope: str
    subject: str
    period: str
    limit_usd: float
    hard: bool
    downgrade_to: str | None
    alert: bool
    pace: bool
    created_at: UtcDateTime


class IssuerCreate(Body):
    """A site that mints JWTs for its end users, with one fixed algorithm."""

    issuer: str = Field(min_length=1, max_length=256, description="`iss`; unique across tenants")
    audience: str = Field(min_length=1, max_length=256, description="`aud` the tokens must carry")
    algorithm: Literal["HS256", "RS256", "ES256"]
    environment: EnvName = "production"
    keys: dict[Kid, KeyMaterial] = Field(
        min_length=1,
        max_length=16,
        description="kid -> a PEM public key (RS256: RSA >= 2048 bits; ES256: EC P-256) or, for"
        " HS256, a base64url secret of 32+ bytes",
    )


class IssuerOut(BaseModel):
    """A JWT issuer: its kids and public keys; HS256 secrets are never returned."""

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
    """A budget event: a soft cap crossed, a hard cap reached, a request downgraded."""

    id: int
    tenant_id: str
    budget_id: str
    subject_id: str
    period_key: str
    kind: str
    spent_usd: float
    limit_usd: float
    created_at: UtcDateTime


class UsageRecordOut(BaseModel):
    """One data-plane request from the usage ledger."""

    id: int
    request_id: str
    created_at: UtcDateTime
    tenant_id: str
    environment: str
    key_id: str
    end_user: str | None
    endpoint: str
    route: str
    provider: str | None
    model: str | None
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_ms: float
    status: int
    outcome: str


class UsageRecords(BaseModel):
    """Usage records, newest first; pass `next_before` as `before` for the next page."""

    object: Literal["list"] = "list"
    data: list[UsageRecordOut]
    has_more: bool
    next_before: int | None


class UsageGroup(BaseModel):
    """Totals of one group; only the requested group columns are present."""

    tenant: str | None = None
    environment: str | None = None
    key: str | None = None
    user: str | None = None
    model: str | None = None
    route: str | None = None
    provider: str | None = None
    day: str | None = Field(None, description="YYYY-MM-DD (UTC)")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    errors: int = Field(description="Requests answered with a status of 400 or more")


class UsageGroups(BaseModel):
    """Usage totals per group, ordered by the group columns."""

    object: Literal["list"] = "list"
    data: list[UsageGroup]


T = TypeVar("T")


class Listing(BaseModel, Generic[T]):
    """A list of objects, OpenAI style."""

    object: Literal["list"] = "list"
    data: list[T]


RotationDays = Annotated[int, Strict(), Field(ge=1, le=3650)]
GraceSeconds = Annotated[int, Strict(), Field(ge=0, le=90 * 86400)]


class SecretCreate(Body):
    """A provider credential to keep in the vault."""

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$",
        max_length=128,
        description="Referenced from the configuration as `vault:<name>`",
    )
    value: str = Field(min_length=1, max_length=16384, description="Never shown again")
    tenant_id: str | None = Field(
        None, description="Owner tenant; omit for an operator secret shared through grants"
    )
    environment: str | None = Field(
        None, description="The owner tenant's environment (required with tenant_id)"
    )
    description: str = Field("", max_length=500)
    rotation_days: RotationDays | None = None
    grace_s: GraceSeconds | None = None

    @model_validator(mode="after")
    def _owner(self) -> SecretCreate:
        if (self.tenant_id is None) != (self.environment is None):
            raise ValueError("tenant_id and environment go together (both, or neither)")
        return self


class SecretRotate(Body):
    """A new value for a secret; the previous version stays valid for the grace period."""

    value: str = Field(min_length=1, max_length=16384)
    grace_s: GraceSeconds | None = None


class GrantCreate(Body):
    """Let a tenant's environment (or all of them: '*') use an operator secret."""

    tenant_id: str = Field(pattern=NAME, max_length=64)
    environment: str = Field("*", pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9._\-]*)$", max_length=64)


class GrantOut(BaseModel):
    """A grant of an operator secret."""

    tenant_id: str
    environment: str


class SecretVersionOut(BaseModel):
    """One version's metadata (never its value)."""

    version: int
    state: Literal["active", "previous", "retired"]
    kek_id: str
    kek_version: int
    created_at: UtcDateTime
    retire_after: UtcDateTime | None


class SecretOut(BaseModel):
    """A secret's metadata: owner, versions, rotation state, grants; never the value."""

    object: Literal["vault.secret"] = "vault.secret"
    id: str
    name: str
    tenant_id: str | None
    environment: str | None
    description: str
    rotation_days: int
    grace_s: int
    current_version: int
    rotated_at: UtcDateTime
    rotation_due_at: UtcDateTime
    rotation_status: Literal["ok", "due", "overdue"]
    versions: list[SecretVersionOut]
    grants: list[GrantOut]
    created_at: UtcDateTime


class KekRotated(BaseModel):
    """The result of a key-encryption-key rotation."""

    kek_id: str
    version: int
    rewrapped: int
    retired_below: int


class AdminIdentity(BaseModel):
    """The calling admin key."""

    key_id: str
    tenant_id: str | None


class VaultSigningSecretIssue(Body):
    """How long the key's previous vault signing secrets keep working."""

    overlap_s: (
        Annotated[
            int,
            Strict(),
            Field(
                ge=0,
                le=7 * 86400,
                description="Seconds the previous secrets keep signing (default: 3600 when a key"
                " rotates its own, 0 when another key's is issued or replaced)",
            ),
        ]
        | None
    ) = None


class VaultSigningSecret(BaseModel):
    """A new vault signing secret (base64url of 32 random bytes), shown in this answer only."""

    object: Literal["vault.signing_secret"] = "vault.signing_secret"
    key_id: str = Field(description="The admin key that signs with it")
    signing_secret: str
    issued_at: UtcDateTime
    previous_valid_until: UtcDateTime | None = Field(
        description="Until when the secrets it replaces keep working (null: there were none)"
    )


def _endpoint_url(value: str) -> str:
    from relaygate.webhooks.ssrf import check_url_shape

    check_url_shape(value)
    return value


def _networks(value: list[str]) -> list[str]:
    from relaygate.webhooks.endpoints import parse_networks

    return parse_networks(value)


def _events(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("an event type is listed twice")
    return value


WEBHOOK_EVENTS = ("job.succeeded", "job.failed")
EventType = Literal["job.succeeded", "job.failed"]
EndpointUrl = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        description="http(s) URL; job callback URLs must be it or lie below it",
    ),
    AfterValidator(_endpoint_url),
]
PrivateNetworks = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(
        max_length=32,
        description="Private networks this endpoint may resolve into (e.g. a WordPress on"
        " 10.0.0.5/32); everything non-public is refused otherwise",
    ),
    AfterValidator(_networks),
]
Events = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(WEBHOOK_EVENTS), description="null: every event"),
    AfterValidator(_events),
]


class EndpointCreate(Body):
    """A webhook receiver of a tenant. Job callback URLs must start with `url`."""

    url: EndpointUrl
    description: Annotated[str, Field(max_length=500)] = ""
    allow_private: PrivateNetworks | None = None
    events: Events | None = None


class EndpointPatch(Body):
    """Fields to change; absent fields stay as they are (null: allow_private none, events all).
    A new `url` or `allow_private` goes through the same checks as a registration."""

    url: EndpointUrl | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    allow_private: PrivateNetworks | None = None
    events: Events | None = None
    enabled: Flag | None = None


class EndpointRotate(Body):
    """A new secret; the old ones keep signing for `overlap_s` seconds."""

    overlap_s: Annotated[int, Strict(), Field(ge=0, le=7 * 86400)] = 86400


class EndpointOut(BaseModel):
    """A webhook endpoint and its delivery health (its secrets are never shown again after
    creation or rotation)."""

    id: str
    tenant_id: str
    url: str
    description: str
    allow_private: list[str] | None
    events: list[str] | None = Field(description="Event types it receives (null: all)")
    enabled: bool
    created_at: UtcDateTime
    disabled_at: UtcDateTime | None
    disabled_reason: str | None
    last_error: str | None = Field(description="Why the last failed attempt failed")
    last_failure_at: UtcDateTime | None
    last_success_at: UtcDateTime | None
    failing_since: UtcDateTime | None
    consecutive_failures: int = Field(description="Failed attempts since the last delivery")
    delivered_count: int = Field(description="Messages delivered")
    failed_count: int = Field(description="Failed attempts (refused ones included)")
    refused_count: int = Field(description="Attempts refused by the SSRF guard")
    destination_check: str | None = Field(
        None,
        description="In the answer to a registration or URL change: for a host name, that it"
        " is resolved and checked again at every delivery",
    )
    secret: str | None = Field(None, description="Only in the answer that created the secret")


class MessageOut(BaseModel):
    """A webhook message and where it stands."""

    id: str
    endpoint_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UtcDateTime
    created_at: UtcDateTime
    delivered_at: UtcDateTime | None
    last_error: str | None


class AttemptOut(BaseModel):
    """One delivery attempt (the receiver's body is never stored)."""

    attempt: int
    at: UtcDateTime
    status_code: int | None
    latency_ms: float
    outcome: str
    error: str | None
