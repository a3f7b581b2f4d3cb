"""The configuration schema. Every field is validated at startup; errors name the key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SECRET_REF = re.compile(r"^(env|vault):[A-Za-z_][A-Za-z0-9_.\-/]*$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"

ProviderType = Literal["openai", "azure", "openai_compatible", "anthropic", "gemini", "simulator"]
Capability = Literal["chat", "tools", "vision", "json", "embeddings", "streaming"]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    """Upstream timeouts in seconds."""

    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    between_chunks: float = Field(60.0, gt=0)
    total: float = Field(600.0, gt=0)


class SimulatorFaults(Strict):
    """Faults the simulator injects, each a probability in [0, 1]."""

    rate_limit: float = Field(0.0, ge=0, le=1)
    retry_after_s: float = Field(1.0, ge=0)
    server_error: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)
    disconnect_mid_stream: float = Field(0.0, ge=0, le=1)


class SimulatorSettings(Strict):
    """Timing of the built-in simulator provider."""

    ttft_ms: float = Field(50.0, ge=0)
    tokens_per_s: float = Field(200.0, gt=0)
    max_reply_tokens: int = Field(64, ge=1)
    seed: int | None = None
    faults: SimulatorFaults = SimulatorFaults()


class ModelConfig(Strict):
    """One model served by a provider."""

    name: str = Field(pattern=NAME)
    upstream: str | None = None
    context_window: int = Field(8192, gt=0)
    max_output_tokens: int = Field(4096, gt=0)
    input_price: float = Field(0.0, ge=0, description="USD per million input tokens")
    output_price: float = Field(0.0, ge=0, description="USD per million output tokens")
    cached_input_price: float | None = Field(None, ge=0)
    capabilities: frozenset[Capability] = frozenset({"chat", "streaming"})
    embedding_dimensions: int | None = Field(None, gt=0)
    tokenizer: str | None = None

    @property
    def upstream_id(self) -> str:
        """The model id sent to the provider (Azure: the deployment name)."""
        return self.upstream or self.name


class ProviderConfig(Strict):
    """One upstream provider and the models it serves."""

    name: str = Field(pattern=NAME)
    type: ProviderType
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Timeouts()
    max_response_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_connections: int = Field(256, gt=0)
    stream_usage: bool = True
    models: list[ModelConfig] = Field(min_length=1)
    simulator: SimulatorSettings | None = None

    @field_validator("api_key")
    @classmethod
    def _secret_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not SECRET_REF.match(value):
            raise ValueError(
                "must be a secret reference such as 'env:OPENAI_API_KEY' or 'vault:openai';"
                " literal secrets are not allowed in the configuration file"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers_are_references_when_secret(cls, value: dict[str, str]) -> dict[str, str]:
        for header in value:
            secret = header.lower() in {"authorization", "api-key", "x-api-key", "x-goog-api-key"}
            if secret and not SECRET_REF.match(value[header]):
                raise ValueError(f"header {header!r} carries a secret: use a reference")
        return value

    @model_validator(mode="after")
    def _check_type_requirements(self) -> ProviderConfig:
        if self.type in {"azure", "openai_compatible"} and not self.base_url:
            raise ValueError(f"providers of type {self.type!r} need a base_url")
        if self.type == "azure" and not self.api_version:
            raise ValueError("providers of type 'azure' need an api_version")
        if self.type in {"openai", "azure", "anthropic", "gemini"} and not self.api_key:
            raise ValueError(f"providers of type {self.type!r} need an api_key reference")
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        return self


class ClassifyConfig(Strict):
    """Complexity routing: simple prompts go to one route, complex ones to another."""

    simple: str = Field(min_length=1, description="Route (or provider/model) for simple prompts")
    complex: str = Field(min_length=1, description="Route (or provider/model) for complex prompts")
    threshold: float = Field(
        0.5, ge=0, le=1, description="Complexity score from which a prompt counts as complex"
    )


class RouteConfig(Strict):
    """A public model name that maps to provider models (scored), or classifies prompts."""

    name: str = Field(pattern=NAME)
    targets: list[str] = Field(default_factory=list, description="'provider/model' references")
    classify: ClassifyConfig | None = None
    latency_slo_ms: float | None = Field(
        None,
        gt=0,
        description="Deployments whose rolling p95 breaks this are used only if nothing else fits",
    )

    @model_validator(mode="after")
    def _targets_or_classify(self) -> RouteConfig:
        if bool(self.targets) == (self.classify is not None):
            raise ValueError("a route has either targets or classify, not both, not neither")
        return self


class RoutingWeights(Strict):
    """How much each signal counts when deployments are scored (lower score wins)."""

    latency: float = Field(1.0, ge=0, description="log2 of p95 relative to the fastest candidate")
    errors: float = Field(
        4.0, ge=0, description="recent error rate (0..1), timeouts and 429s included"
    )
    price: float = Field(1.0, ge=0, description="expected cost relative to the cheapest candidate")
    headroom: float = Field(0.25, ge=0, description="bonus for unused context window (0..1)")
    order: float = Field(0.05, ge=0, description="small preference for the order written")


class BreakerSettings(Strict):
    """When a deployment's circuit opens and how long it cools down."""

    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1, description="opens above this rate in the window")
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(10, ge=1, description="requests in the window before the rate counts")
    cooldown_s: float = Field(
        10.0, gt=0, description="first cooldown; doubles after a failed probe"
    )
    max_cooldown_s: float = Field(
        60.0, gt=0, description="cap on a cooldown (a recovered deployment waits at most this)"
    )


class RetrySettings(Strict):
    """Retries with jittered exponential backoff, bounded by a retry budget."""

    max_attempts: int = Field(3, ge=1, le=10, description="attempts per request, all deployments")
    backoff_base_ms: float = Field(50.0, ge=0)
    backoff_max_ms: float = Field(2000.0, ge=0)
    budget_ratio: float = Field(
        0.2, ge=0, le=1, description="retries may add at most this share of requests"
    )
    budget_min_per_s: float = Field(1.0, ge=0, description="retries always allowed per second")


class PacingSettings(Strict):
    """How strongly a paced budget steers routing towards or away from cheap deployments."""

    gain: float = Field(
        8.0, gt=0, description="doublings of the price weight per horizon of spend ahead of pace"
    )
    horizon: float = Field(
        1 / 12,
        gt=0,
        le=1,
        description="share of the budget's period whose spend counts as one horizon",
    )
    max_scale: float = Field(
        64.0, ge=1, description="bound on the factor, both ways (64: between 1/64 and 64)"
    )


class RoutingConfig(Strict):
    """How a route's deployments are chosen, retried and cut off."""

    strategy: Literal["score", "ordered"] = Field(
        "score", description="'score': by latency, errors, price, headroom; 'ordered': as written"
    )
    weights: RoutingWeights = RoutingWeights()
    long_prompt_weights: RoutingWeights | None = Field(
        None,
        description="weights for prompts of 8,192 tokens or more (default: `weights`)",
    )
    pacing: PacingSettings = PacingSettings()
    breaker: BreakerSettings = BreakerSettings()
    retry: RetrySettings = RetrySettings()
    context_margin: float = Field(
        0.05, ge=0, lt=1, description="share of a context window kept free when checking fit"
    )
    attempt_timeout_s: float | None = Field(
        None, gt=0, description="cap on one attempt (default: the provider's timeouts)"
    )
    deadline_s: float = Field(600.0, gt=0, description="cap on a whole request, all attempts")
    latency_samples: int = Field(200, ge=10, le=10000, description="samples kept per deployment")
    latency_max_age_s: float = Field(
        120.0,
        gt=0,
        description="latency samples older than this are forgotten (a shunned deployment is"
        " judged afresh, not by a slow spell long past)",
    )
    slowdown_half_life_s: float = Field(
        30.0,
        gt=0,
        description="how fast a deployment's recent slowdown (vs its median) is forgotten",
    )
    debug_header: bool = Field(
        False, description="send x-relaygate-route-debug with the score breakdown"
    )


class RecycleConfig(Strict):
    """Replacing a worker whose memory stayed grown after a burst (decision 0019).

    CPython keeps memory it has freed: after thousands of concurrent streams a worker stays at
    its peak resident size although little of it is live. A supervisor replaces such a worker
    with a fresh one, which starts serving before the old one stops (no refused connection).
    """

    enabled: bool = Field(True, description="replace workers whose memory stayed grown")
    growth_mb: int = Field(
        128, ge=1, description="resident memory above the worker's lowest figure that triggers it"
    )
    quiet_s: float = Field(
        30.0, gt=0, description="only after this long with no request, job or resumable stream"
    )
    check_interval_s: float = Field(5.0, gt=0, description="how often a worker checks itself")


class ServerConfig(Strict):
    """How the gateway listens and where it keeps its state."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    data_dir: Path = Path("data")
    database_url: str | None = None
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    heartbeat_interval_s: float = Field(15.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    default_tenant: str = Field("default", pattern=NAME)
    redis_url: str | None = Field(
        None, description="Shared state for several replicas: limits, budgets, replay caches"
    )
    redis_prefix: str = Field("relaygate:", min_length=1, max_length=64)
    policy_refresh_s: float = Field(
        2.0, gt=0, le=5, description="How often keys, limits and budgets are reloaded"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    recycle: RecycleConfig = RecycleConfig()

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'relaygate.db').as_posix()}"


class LimitsConfig(Strict):
    """Rate-limit behaviour that is not per tenant (per-tenant limits live in the database)."""

    on_backend_error: Literal["local", "open", "closed"] = Field(
        "local",
        description="When Redis is unreachable: enforce per replica ('local'), admit ('open')"
        " or refuse with 503 ('closed')",
    )


class BudgetsConfig(Strict):
    """Spend-cap behaviour that is not per tenant (budgets themselves live in the database)."""

    on_backend_error: Literal["local", "closed"] = "local"
    reserve_output_tokens: int | None = Field(
        None,
        gt=0,
        description="Reserve at most this many output tokens per request (default: the request's"
        " max_tokens or the model's maximum); a stream that outgrows its reservation extends it"
        " as it goes and is ended when a hard cap would be crossed",
    )
    stream_overrun: Literal["finish", "error"] = Field(
        "finish",
        description="A stream that crosses a hard cap ends with finish_reason 'length' and"
        " [DONE] ('finish') or with an error event ('error')",
    )


class VaultTransitSettings(Strict):
    """HashiCorp Vault's transit engine holding the key-encryption key."""

    url: str = Field(pattern=r"^https?://", description="Vault's address")
    token: str = Field(
        pattern=r"^env:[A-Za-z_][A-Za-z0-9_]*$",
        description="The Vault token, as an 'env:NAME' reference",
    )
    key: str = Field("relaygate", pattern=NAME, description="Transit key (created derived=true)")
    mount: str = Field("transit", pattern=NAME)
    namespace: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=60)


class AwsKmsSettings(Strict):
    """An AWS KMS key holding the key-encryption key (credentials: the standard AWS chain)."""

    key_id: str = Field(min_length=1, description="Key id, ARN or alias/NAME")
    region: str | None = None
    endpoint_url: str | None = Field(None, pattern=r"^https?://")


class VaultConfig(Strict):
    """The provider vault: where the key-encryption key lives and how secrets rotate."""

    kms: Literal["local", "vault_transit", "aws_kms"] = Field(
        "local",
        description="Key-encryption key: 'local' (a keyring file in the data directory or"
        " RELAYGATE_KEK), 'vault_transit' or 'aws_kms'",
    )
    vault_transit: VaultTransitSettings | None = None
    aws_kms: AwsKmsSettings | None = None
    data_key_cache_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Keep unwrapped data keys this long to spare KMS round trips (0: off)",
    )
    rotation_days: int = Field(30, ge=1, le=3650, description="Default rotation period")
    grace_s: int = Field(
        86400, ge=0, description="Default time a replaced version stays valid before retirement"
    )
    maintenance_interval_s: float = Field(
        60.0, gt=0, description="How often retirements and rotation alerts are checked"
    )

    @model_validator(mode="after")
    def _kms_settings(self) -> VaultConfig:
        if self.kms == "vault_transit" and self.vault_transit is None:
            raise ValueError("kms 'vault_transit' needs a vault_transit section")
        if self.kms == "aws_kms" and self.aws_kms is None:
            raise ValueError("kms 'aws_kms' needs an aws_kms section")
        return self


class AuditConfig(Strict):
    """The tamper-evident audit log."""

    flush_interval_s: float = Field(
        5.0, gt=0, le=300, description="How often counted events (credential uses) are written"
    )
    checkpoint_interval_s: float = Field(
        300.0, gt=0, description="How often the log's head is signed and exported"
    )
    export_path: Path | None = Field(
        None,
        description="JSON-lines file receiving signed checkpoints (default:"
        " <data_dir>/audit-checkpoints.jsonl); put it where the database's administrators"
        " cannot rewrite it",
    )


class PrivacyConfig(Strict):
    """What inference metadata keeps about people."""

    hash_pii: bool = Field(
        False,
        description="Store end-user ids as keyed hashes (HMAC-SHA256 with a per-deployment salt)",
    )


class LoggingConfig(Strict):
    """What the gateway's processes write to stderr (docs/observability.md#logs)."""

    format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: one JSON object per line; text: for reading in a terminal; auto:"
        " text when stderr is a terminal, json otherwise",
    )
    access_log: bool = Field(
        True, description="One line per data-plane request, written after its answer is sent"
    )
    redact: bool = Field(
        True,
        description="Remove secrets and personal data (e-mail, phone, card numbers) from every"
        " log line; personal data becomes its privacy.hash_pii pseudonym when that is on",
    )


class JobsConfig(Strict):
    """Background jobs (`/v1/jobs`) and how they are dispatched to workers."""

    queue: Literal["embedded", "redis"] = Field(
        "embedded",
        description="embedded: the gateway runs jobs itself; redis: a Redis stream (taskiq)"
        " feeds `relaygate worker` processes on any number of machines",
    )
    redis_url: str | None = Field(
        None, description="Broker for queue: redis (default: server.redis_url)"
    )
    run_in_gateway: bool = Field(
        True, description="Whether `relaygate serve` also executes jobs (besides any workers)"
    )
    concurrency: int = Field(16, ge=1, le=1000, description="Jobs run at once per process")
    lease_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="A running job whose worker stops renewing its lease for"
        " this long is given to another worker",
    )
    max_attempts: int = Field(
        5, ge=1, le=50, description="Executions before a job is dead-lettered"
    )
    retry_base_s: float = Field(2.0, gt=0, le=3600)
    retry_max_s: float = Field(300.0, gt=0, le=86400)
    attempt_timeout_s: float = Field(600.0, gt=0, le=86400)
    sweep_interval_s: float = Field(
        5.0, gt=0, le=300, description="How often expired leases and stranded jobs are re-enqueued"
    )
    requeue_after_s: float = Field(
        300.0,
        ge=1,
        le=86400,
        description="A job still queued this long after it was handed to the queue is handed"
        " over again (covers a broker that lost its messages)",
    )
    retention_days: int = Field(30, ge=1, description="Finished jobs are kept this long")
    max_result_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        le=2**31,
        description="A larger answer fails the job (code result_too_large); it bounds what is"
        " stored and the job's webhook payload",
    )
    worker_heartbeat_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often a process that runs jobs from the Redis queue announces itself",
    )
    worker_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A worker not heard from for this long no longer counts as taking jobs"
        " (/readyz reports jobs as degraded when no worker counts)",
    )

    @model_validator(mode="after")
    def _timeout_exceeds_heartbeat(self) -> JobsConfig:
        if self.worker_timeout_s <= self.worker_heartbeat_s:
            raise ValueError(
                "worker_timeout_s must be longer than worker_heartbeat_s (a live worker would"
                " look gone between two heartbeats)"
            )
        return self


class WebhooksConfig(Strict):
    """Outbound webhooks (job results) signed with Standard Webhooks."""

    attempt_timeout_s: float = Field(20.0, ge=1, le=60)
    poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often due deliveries are sent"
    )
    concurrency: int = Field(16, ge=1, le=500)
    disable_after_s: float = Field(
        5 * 86400.0, gt=0, description="An endpoint failing continuously this long is disabled"
    )
    schedule_s: list[float] | None = Field(
        None,
        description="Delays between attempts (default Svix-like: 0, 5 s, 5 min, 30 min, 2 h, 5 h,"
        " 10 h, 10 h); each gets +-20% jitter",
    )


class StreamsConfig(Strict):
    """Resumable streams (`x-relaygate-resumable: true` on a streaming request)."""

    store: Literal["auto", "memory", "redis"] = Field(
        "auto",
        description="Where events are kept: memory (this process), redis (any replica can"
        " resume); auto: redis when server.redis_url is set",
    )
    ttl_s: float = Field(
        600.0, ge=1, le=86400, description="How long events are kept after the last one"
    )
    max_events: int = Field(20000, ge=10, le=1_000_000, description="Latest events kept per stream")


class BatchesConfig(Strict):
    """OpenAI-compatible files and batches (lines run as jobs)."""

    max_file_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, le=2**31, description="Largest input file accepted"
    )
    max_requests: int = Field(
        50_000, ge=1, le=1_000_000, description="Most requests (lines) in one batch input file"
    )


class BoundsConfig(Strict):
    """Upper bounds on what one data-plane request may ask for (docs/api.md#bounds).

    Each bounds work or memory that a request of a few bytes could otherwise make the gateway
    (or its built-in simulator) spend; a request beyond one gets `400` naming the parameter.
    """

    max_messages: int = Field(2048, ge=1, le=100_000, description="Chat `messages` per request")
    max_tools: int = Field(128, ge=1, le=10_000, description="Chat `tools` per request")
    max_stop_sequences: int = Field(16, ge=1, le=1024, description="Chat `stop` sequences")
    max_n: int = Field(128, ge=1, le=10_000, description="Chat `n` (choices asked for)")
    max_output_tokens: int = Field(
        1_048_576,
        ge=1,
        le=2**31 - 1,
        description="Chat `max_tokens` / `max_completion_tokens` (a key may cap it lower)",
    )
    max_embedding_inputs: int = Field(
        2048, ge=1, le=100_000, description="Embeddings `input` items per request"
    )
    max_embedding_dimensions: int = Field(
        4096, ge=1, le=65_536, description="Embeddings `dimensions`"
    )
    max_embedding_values: int = Field(
        4_194_304,
        ge=1,
        le=2**31,
        description="Embeddings inputs x `dimensions` (the size of the answer, when"
        " `dimensions` is given)",
    )
    max_depth: int = Field(
        64,
        ge=8,
        le=200,
        description="Nesting of objects and lists in a request body (the JSON encoder stops"
        " at 254)",
    )


class GatewayConfig(Strict):
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    routing: RoutingConfig = RoutingConfig()
    vault: VaultConfig = VaultConfig()
    audit: AuditConfig = AuditConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    logging: LoggingConfig = LoggingConfig()
    jobs: JobsConfig = JobsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    streams: StreamsConfig = StreamsConfig()
    batches: BatchesConfig = BatchesConfig()
    bounds: BoundsConfig = BoundsConfig()
    providers: list[ProviderConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_references(self) -> GatewayConfig:
        providers = {p.name: p for p in self.providers}
        if len(providers) != len(self.providers):
            raise ValueError("provider names must be unique")
        route_names: set[str] = set()
        for route in self.routes:
            if route.name in route_names:
                raise ValueError(f"route {route.name!r} is declared twice")
            route_names.add(route.name)
            if route.classify is not None:
                continue
            for target in route.targets:
                provider_name, _, model_name = target.partition("/")
                provider = providers.get(provider_name)
                if provider is None or not any(m.name == model_name for m in provider.models):
                    raise ValueError(
                        f"route {route.name!r} targets {target!r}, which is not a declared"
                        " 'provider/model'"
                    )
        known = route_names | {f"{p.name}/{m.name}" for p in self.providers for m in p.models}
        for route in self.routes:
            if route.classify is None:
                continue
            for side in (route.classify.simple, route.classify.complex):
                if side not in known or side == route.name:
                    raise ValueError(
                        f"route {route.name!r} classifies into {side!r}, which is not another"
                        " route or a 'provider/model'"
                    )
        return self
