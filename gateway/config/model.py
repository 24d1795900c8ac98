"""Typed, validated configuration. Built by gateway.config.loader from YAML.

Secrets (`env:NAME`) are resolved by the loader; `Secret` keeps the value out
of reprs and logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.strategy import Strategy

# What a deployment serves; a route serves one type. Embeddings arrive whole, so their
# routes use fallback or weighted: there is no first token to race or hedge on.
DeploymentType = Literal["chat", "embedding"]
DEPLOYMENT_TYPES: tuple[str, ...] = ("chat", "embedding")
EMBEDDING_STRATEGIES: tuple[str, ...] = ("fallback", "weighted")


class Secret:
    """A resolved secret. str() and repr() never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # e.g. "env:OPENAI_API_KEY" - safe to print

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class AuthConfig:
    keys: tuple[Secret, ...] = ()


@dataclass(frozen=True, slots=True)
class AdminConfig:
    key: Secret | None = None


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048
    max_json_depth: int = 64
    max_sse_line_bytes: int = 1024 * 1024
    stream_buffer_events: int = 256  # per-request bound on buffered event batches
    max_embedding_inputs: int = 2048  # inputs of one embeddings request (OpenAI's limit)


@dataclass(frozen=True, slots=True)
class StateConfig:
    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"  # redis://, rediss:// (TLS), unix://, redis+sentinel://
    prefix: str = "rg"
    cluster: bool = False  # Redis Cluster (or a managed service speaking its protocol)
    username: str | None = None  # ACL user (else the URL's)
    password: Secret | None = None  # ACL password (else the URL's)
    sentinel_master: str | None = None  # Sentinel: the monitored master's name
    sentinels: tuple[str, ...] = ()  # Sentinel: host:port of each sentinel
    tls_ca_file: str | None = None  # rediss://: CA bundle to verify the server with
    request_timeout_ms: float = 5.0  # longest the request path waits on Redis
    probe_interval_s: float = 0.5  # while Redis is away: how often it is tried again


@dataclass(frozen=True, slots=True)
class PrewarmConfig:
    enabled: bool = True
    connections: int = 2


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    region_header: str = "x-gateway-region"
    default_region: str = "eu"
    regions: tuple[str, ...] = ("eu", "us", "apac")
    country_header: str | None = None  # e.g. cf-ipcountry
    country_regions: dict[str, str] = field(default_factory=dict)  # "DE" -> "eu"
    min_samples: int = 50
    exploration: float = 0.05
    half_life_days: float = 7.0
    prewarm: PrewarmConfig = field(default_factory=PrewarmConfig)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str  # a registered provider kind: openai, anthropic, gemini, ollama, deepseek, ...
    base_url: str
    api_key: Secret | None = None
    max_connections: int = 100
    connect_timeout_s: float = 5.0
    keepalive_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # adapter-specific (quirk overrides ...)


@dataclass(frozen=True, slots=True)
class PriceConfig:
    input: float = 0.0  # USD per million tokens
    output: float = 0.0


@dataclass(frozen=True, slots=True)
class PriorConfig:
    ttft_p50_ms: float = 800.0
    ttft_p95_ms: float = 2000.0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    name: str
    provider: str
    model: str
    price: PriceConfig = field(default_factory=PriceConfig)
    ttft_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    prior: PriorConfig = field(default_factory=PriorConfig)
    region: str | None = None
    local: bool = False
    weight: float = 1.0
    error_budget: float = 0.05
    drop_params: bool = False
    max_tokens_default: int = 4096
    rpm: int | None = None  # upstream requests per minute (shared across instances)
    tpm: int | None = None  # upstream tokens per minute (estimated prompt + max tokens)
    options: dict[str, Any] = field(default_factory=dict)
    type: DeploymentType = "chat"
    batch_size: int | None = None  # embedding inputs per upstream call (None: the adapter's)


@dataclass(frozen=True, slots=True)
class TierConfig:
    """One tier of a route: the first tier whose condition matches serves the request."""

    name: str
    deployments: tuple[str, ...]
    strategy: Strategy = "fallback"
    k: int = 2
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    images: bool | None = None
    tools: bool | None = None
    reasoning: bool | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    deployments: tuple[str, ...]
    strategy: Strategy = "fallback"
    k: int = 2
    hedge_delay_ms: float = 600.0
    # Off by default: a keep-alive commits HTTP 200 before the outcome is known (README).
    heartbeat_after_s: float | None = None
    max_extra_load: float | None = None  # None: races are not limited, hedges get 0.5
    min_extra_per_s: float = 1.0  # the budget's floor: extra attempts always allowed per second
    data_residency: tuple[str, ...] | None = None
    governance: GovernanceConfig | None = None  # route-level override of the global policy
    hedge_quantile: float = 0.9  # per-deployment hedge delay from the latency profile
    hedge_min_ms: float = 50.0
    hedge_max_ms: float = 5000.0
    tiers: tuple[TierConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class OutputFilterConfig:
    action: Literal["redact", "stop"] = "redact"
    window: int = 64
    detectors: tuple[str, ...] = ()
    patterns: dict[str, str] = field(default_factory=dict)  # name -> regex


@dataclass(frozen=True, slots=True)
class KeyPolicyConfig:
    """Per gateway key ("key-1" = the first of auth.keys): PII overrides and residency."""

    pii: dict[str, str] = field(default_factory=dict)
    data_residency: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class GovernanceConfig:
    pii: dict[str, str] = field(default_factory=dict)  # type -> redact | block | local_only | allow
    output: OutputFilterConfig | None = None
    keys: dict[str, KeyPolicyConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthConfig:
    window: int = 100
    min_requests: int = 20
    cooldown_s: float = 30.0
    half_open_probes: int = 3


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    reasoning_header: str = "x-gateway-reasoning"  # a truthy value marks a hard prompt
    weights_interval_s: float = 60.0
    key_rpm: int | None = None  # per gateway key, shared across instances
    key_tpm: int | None = None
    key_daily_budget_usd: float | None = None


# What the official SDKs send (openai-python/-node, anthropic-sdk-python/-typescript): a
# browser asks for each of them in the preflight. A trailing `*` matches a name prefix.
SDK_REQUEST_HEADERS: tuple[str, ...] = (
    "authorization",
    "content-type",
    "accept",
    "x-api-key",
    "x-stainless-*",
    "anthropic-*",  # anthropic-version, -beta, -dangerous-direct-browser-access
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
    "x-request-id",
    "user-agent",
)
GATEWAY_RESPONSE_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "x-gateway-deployment",
    "x-gateway-worker",
    "retry-after",
    "x-should-retry",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


@dataclass(frozen=True, slots=True)
class CorsConfig:
    """Browser pages on other origins (chat frontends). No `allow_origins`: CORS is off."""

    allow_origins: tuple[str, ...] = ()  # ("*",) = any origin; "http://localhost:*" = any port
    allow_headers: tuple[str, ...] = SDK_REQUEST_HEADERS  # the loader adds the gateway's own
    expose_headers: tuple[str, ...] = GATEWAY_RESPONSE_HEADERS
    max_age_s: int = 600  # preflight cache (Chromium caps it at 7200)

    @property
    def enabled(self) -> bool:
        return bool(self.allow_origins)


@dataclass(frozen=True, slots=True)
class ResponsesConfig:
    """The Responses door's stored responses (`store: true`, `previous_response_id`)."""

    store_ttl_s: float = 3600.0
    max_stored: int = 10_000  # memory backend only: the oldest records go first ...
    max_stored_mb: float = 256.0  # ... and so they do past this much JSON
    store_by_default: bool = False  # when a request has no `store` (the real API: true)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Config:
    listen: ListenConfig = field(default_factory=ListenConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    cors: CorsConfig = field(default_factory=CorsConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    sim: dict[str, Any] | None = None  # validated by gateway.sim.config
