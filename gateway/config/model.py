"""Typed, validated configuration. Built by gateway.config.loader from YAML.

Secrets (`env:NAME`) are resolved by the loader; `Secret` keeps the value out
of reprs and logs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import field
from typing import Any, Literal

from gateway.catalogue.entry import Capabilities
from gateway.strategy import Strategy
from gateway.value_class import value_class

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


@value_class
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@value_class
class KeyConfig:
    """One gateway key: an `auth.keys` entry, or a runtime key made through the admin API.

    `name` is its id in logs, metrics, spend and the admin API (`key-N` for the N-th
    entry when not named). The secret is kept as its SHA-256 `digest` only; `secret` is
    the value when the config gives it (so it can be scrubbed), None for `sha256:` and
    runtime keys."""

    name: str
    digest: bytes = field(repr=False)
    secret: Secret | None = None
    routes: tuple[str, ...] | None = None  # routes (or deployments) it may use; None: all
    rpm: int | None = None  # None: routing.key_rpm
    tpm: int | None = None  # None: routing.key_tpm
    budget_daily_usd: float | None = None  # None: routing.key_daily_budget_usd
    budget_monthly_usd: float | None = None
    pii: dict[str, str] = field(default_factory=dict)  # overrides of the route's PII actions
    data_residency: tuple[str, ...] | None = None  # narrows the route's residency
    allow_direct_deployments: bool | None = None  # None: routing.allow_direct_deployments
    metadata: dict[str, Any] = field(default_factory=dict)  # free (team, owner ...)
    runtime: bool = False  # made through POST /admin/keys
    created_at: float | None = None  # wall time, runtime keys


@value_class
class AuthConfig:
    """`enabled`: the `auth` section is given, so /v1/* needs a key (config or runtime)."""

    keys: tuple[KeyConfig, ...] = ()
    enabled: bool = False
    refresh_s: float = 0.5  # how often runtime keys are re-read from the state backend

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """The key values the config holds (for scrubbing); `sha256:` keys hold none."""
        return tuple(k.secret for k in self.keys if k.secret is not None)


@value_class
class AdminConfig:
    key: Secret | None = None


@value_class
class LimitsConfig:
    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048
    max_json_depth: int = 64
    max_sse_line_bytes: int = 1024 * 1024
    stream_buffer_events: int = 256  # per-request bound on buffered event batches
    max_embedding_inputs: int = 2048  # inputs of one embeddings request (OpenAI's limit)


@value_class
class StreamConfig:
    """How a streamed answer is written after its first token (the first is never held)."""

    coalesce_ms: float = 0.0  # > 0: at most one write per window; what arrives meanwhile joins
    relay: bool = True  # the fast relay of plain text chunks (streaming/relay.py); off: never


@value_class
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


@value_class
class PrewarmConfig:
    enabled: bool = True
    connections: int = 2


@value_class
class LatencyConfig:
    region_header: str = "x-gateway-region"
    default_region: str = "eu"
    regions: tuple[str, ...] = ("eu", "us", "apac")
    country_header: str | None = None  # e.g. cf-ipcountry
    country_regions: dict[str, str] = field(default_factory=dict)  # "DE" -> "eu"
    # a region header naming no configured region: counted, then served from the default
    # region ("default") or refused with a 400 ("refuse")
    unknown_region: Literal["default", "refuse"] = "default"
    min_samples: int = 50
    exploration: float = 0.05
    half_life_days: float = 7.0
    prewarm: PrewarmConfig = field(default_factory=PrewarmConfig)


@value_class
class ProviderConfig:
    name: str
    kind: str  # a registered provider kind: openai, anthropic, gemini, ollama, deepseek, ...
    base_url: str
    api_key: Secret | None = None
    max_connections: int = 100
    connect_timeout_s: float = 5.0
    keepalive_s: float = 30.0
    http2: bool = False  # HTTP/2 to the upstream (ALPN over TLS; prior knowledge over http)
    tls_ca_file: str | None = None  # PEM certificates to trust for its TLS (default: the system's)
    # An HTTP/1.1 connection a race cut is replaced in the background; None ("auto"): over
    # https, where a new connection costs a handshake's round trips
    replace_cut_connections: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # adapter-specific (quirk overrides ...)


def replaces_cut_connections(provider: ProviderConfig) -> bool:
    if provider.replace_cut_connections is not None:
        return provider.replace_cut_connections
    return provider.base_url.lower().startswith("https:")


@value_class
class PriceConfig:
    """USD per million tokens: the config's figures over the catalogue's (0.0 when neither
    gives one); the tiers are None where unknown."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    priority_input: float | None = None
    priority_output: float | None = None


@value_class
class PriorConfig:
    ttft_p50_ms: float = 800.0
    ttft_p95_ms: float = 2000.0


@value_class
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
    # Model facts: the config's values over the catalogue entry's (see gateway/catalogue).
    context_window: int | None = None  # None: unknown, never skipped for length
    max_output_tokens: int | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    deprecated: bool = False
    shutdown_date: dt.date | None = None
    successor: str | None = None
    catalogue_id: str | None = None  # the entry it inherits from
    facts_from: dict[str, str] = field(default_factory=dict)  # fact -> "config" | source
    # May continue another deployment's cut answer (resume) when its provider can; off for
    # models that refuse a trailing assistant message (Claude 4.6+ rejects prefill).
    continuation: bool = True


@value_class
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


@value_class
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
    # Resume on a backup: a text answer cut after its first token is continued by the next
    # candidate that can continue a prefix, up to `max_resumes` times per request.
    resume: bool = False
    max_resumes: int = 1


@value_class
class OutputFilterConfig:
    action: Literal["redact", "stop"] = "redact"
    window: int = 64
    detectors: tuple[str, ...] = ()
    patterns: dict[str, str] = field(default_factory=dict)  # name -> regex


@value_class
class KeyPolicyConfig:
    """`governance.keys.<key name>`: PII overrides and residency of a key (the loader folds
    them into the key's `KeyConfig`; the key object is where the gate reads them)."""

    pii: dict[str, str] = field(default_factory=dict)
    data_residency: tuple[str, ...] | None = None


@value_class
class GovernanceConfig:
    pii: dict[str, str] = field(default_factory=dict)  # type -> redact | block | local_only | allow
    output: OutputFilterConfig | None = None
    keys: dict[str, KeyPolicyConfig] = field(default_factory=dict)


@value_class
class HealthConfig:
    window: int = 100
    min_requests: int = 20
    cooldown_s: float = 30.0
    half_open_probes: int = 3
    # when every candidate is open, cooling or rate-limited: one probe per deployment per
    # interval (shared across instances); other requests are shed at once with retry-after
    probe_interval_s: float = 1.0


@value_class
class RoutingConfig:
    reasoning_header: str = "x-gateway-reasoning"  # a truthy value marks a hard prompt
    weights_interval_s: float = 60.0
    key_rpm: int | None = None  # per gateway key, shared across instances
    key_tpm: int | None = None
    key_daily_budget_usd: float | None = None
    # A client may name a deployment as `model` (bypassing routes) only when allowed here
    # or by its key; the residency and governance of the routes holding it still apply.
    allow_direct_deployments: bool = False
    feedback_window_s: float = 86_400.0  # how long after a request its key may rate it


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


@value_class
class CorsConfig:
    """Browser pages on other origins (chat frontends). No `allow_origins`: CORS is off."""

    allow_origins: tuple[str, ...] = ()  # ("*",) = any origin; "http://localhost:*" = any port
    allow_headers: tuple[str, ...] = SDK_REQUEST_HEADERS  # the loader adds the gateway's own
    expose_headers: tuple[str, ...] = GATEWAY_RESPONSE_HEADERS
    max_age_s: int = 600  # preflight cache (Chromium caps it at 7200)

    @property
    def enabled(self) -> bool:
        return bool(self.allow_origins)


@value_class
class ResponsesConfig:
    """The Responses door's stored responses (`store: true`, `previous_response_id`)."""

    store_ttl_s: float = 3600.0
    max_stored: int = 10_000  # memory backend only: the oldest records go first ...
    max_stored_mb: float = 256.0  # ... and so they do past this much JSON
    store_by_default: bool = False  # when a request has no `store` (the real API: true)


@value_class
class TracesConfig:
    """OpenTelemetry traces over OTLP/HTTP (needs the `otel` extra when enabled)."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "race-gateway"
    sample_ratio: float = 1.0  # of traces the gateway starts (no sampled parent)
    parent_based: bool = True  # follow the client's traceparent sampled flag
    include_content: bool = False  # prompt and answer text on the spans (opt-in)
    max_content_chars: int = 16384  # per message attribute, when content is included
    headers: dict[str, Secret] = field(default_factory=dict)  # e.g. authorization
    timeout_s: float = 10.0  # one export call
    max_queue_spans: int = 2048  # spans waiting for export; more are dropped


@value_class
class TelemetryConfig:
    traces: TracesConfig = field(default_factory=TracesConfig)


@value_class
class LoggingConfig:
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"


@value_class
class AutoRegressConfig:
    """Run a regression suite on a deployment when its upstream reports a new model version
    (paths resolved against the config file's directory)."""

    suite: str
    policy: Literal["alert", "quarantine"] = "alert"
    reports_dir: str | None = None  # Markdown/JSON/PNG per run; None: the admin API only
    baseline: str | None = None  # baseline file; default: as `race-gateway regress`
    min_interval_s: float = 3600.0  # per deployment: at most one run per interval
    lease_s: float = 3600.0  # a run's lease in the state backend (one run per version)
    repeat: int = 1
    concurrency: int = 2
    timeout_s: float = 120.0


@value_class
class CatalogueConfig:
    files: tuple[str, ...] = ()  # private catalogue files (paths as given in the config)
    shipped: bool = True  # inherit from the catalogue in the package


@value_class
class Config:
    listen: ListenConfig = field(default_factory=ListenConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    state: StateConfig = field(default_factory=StateConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    catalogue: CatalogueConfig = field(default_factory=CatalogueConfig)
    auto_regress: AutoRegressConfig | None = None
    cors: CorsConfig = field(default_factory=CorsConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    sim: dict[str, Any] | None = None  # validated by gateway.sim.config
