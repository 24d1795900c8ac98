"""Load the gateway's YAML config, resolve `env:NAME` secrets, validate everything.

`parse_config` looks at the whole tree before it fails, then raises one
`ConfigError` listing every problem with its path, e.g.
`routes.chat.deployments[1]: unknown deployment 'gpt-5'`.
"""

from __future__ import annotations

import importlib
import os
import ssl
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from gateway.catalogue.store import Catalogue
from gateway.config import keys, sections
from gateway.config.facts import catalogue_section, deployment_facts
from gateway.config.model import (
    DEPLOYMENT_TYPES,
    AdminConfig,
    Config,
    DeploymentConfig,
    LatencyConfig,
    LimitsConfig,
    ListenConfig,
    LoggingConfig,
    PrewarmConfig,
    PriorConfig,
    ProviderConfig,
    StateConfig,
)
from gateway.config.routes import route
from gateway.config.telemetry import telemetry as _telemetry
from gateway.config.validate import (
    MISSING,
    ConfigError,
    ConfigFileError,
    Context,
    Reader,
    kind_of,
    read_yaml,
    show,
    suggest,
)

__all__ = ["ConfigError", "ConfigFileError", "load_config", "parse_config"]

STATE_BACKENDS = ("memory", "redis")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a YAML config file. An empty file gives the defaults.
    Relative paths in it (private catalogue files) are from the file's directory."""
    return parse_config(read_yaml(path), env, base_dir=Path(path).parent)


# -- parsing ------------------------------------------------------------------


def parse_config(
    data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Build a `Config` from a YAML tree; `env` resolves `env:NAME` (default os.environ);
    relative catalogue file paths are from `base_dir` (default the working directory)."""
    ctx = Context(os.environ if env is None else env)
    root = Reader(ctx, "", {} if data is None else data)
    listen = _listen(root.section("listen"))
    admin_r = root.section("admin")
    admin = AdminConfig(key=admin_r.secret("key"))
    admin_r.finish()
    limits = _limits(root.section("limits"))
    stream = sections.stream(root.section("stream"))
    state = _state(root.section("state"))
    latency, regions = _latency(root.section("latency"))
    logging = _logging(root.section("logging"))
    providers = {name: _provider(name, r) for name, r in root.entries("providers")}
    catalogue_config, catalogue = catalogue_section(root.section("catalogue"), base_dir)
    deployments = {
        name: _deployment(name, r, providers, regions, catalogue)
        for name, r in root.entries("deployments")
    }
    routes = {name: route(name, r, deployments, regions) for name, r in root.entries("routes")}
    auth_r = root.section("auth")
    auth = keys.auth(auth_r, [*routes, *deployments], regions, admin.key is not None)
    governance_r = root.section("governance")
    governance = sections.governance(governance_r, [k.name for k in auth.keys], regions)
    auth = keys.fold_governance(governance_r, auth, governance)
    health = sections.health(root.section("health"))
    routing = sections.routing(root.section("routing"))
    auto_regress = sections.auto_regress(root.section("auto_regress"), base_dir)
    cors = sections.cors(root.section("cors"), (latency.region_header, routing.reasoning_header))
    responses = sections.responses(root.section("responses"))
    telemetry = _telemetry(root.section("telemetry"))
    sim = root.raw("sim")
    if sim is MISSING or sim is None:
        sim = None
    elif not isinstance(sim, dict):
        ctx.add("sim", f"must be a mapping, got {kind_of(sim)}")
        sim = None
    root.finish()
    error = ctx.error()
    if error is not None:
        raise error
    return Config(
        listen=listen,
        auth=auth,
        admin=admin,
        limits=limits,
        stream=stream,
        state=state,
        latency=latency,
        logging=logging,
        providers=providers,
        deployments=deployments,
        routes=routes,
        governance=governance,
        health=health,
        routing=routing,
        catalogue=catalogue_config,
        auto_regress=auto_regress,
        cors=cors,
        responses=responses,
        telemetry=telemetry,
        sim=sim,
    )


def _listen(r: Reader) -> ListenConfig:
    d = ListenConfig()
    port_msg = "must be an integer 1..65535 (or 0 for an ephemeral port)"
    out = ListenConfig(
        host=r.string("host", d.host),
        port=r.integer("port", d.port, lo=0, hi=65535, expect=port_msg),
    )
    r.finish()
    return out


def _limits(r: Reader) -> LimitsConfig:
    d = LimitsConfig()
    out = LimitsConfig(
        max_body_bytes=r.integer("max_body_bytes", d.max_body_bytes, lo=1),
        max_messages=r.integer("max_messages", d.max_messages, lo=1),
        max_json_depth=r.integer("max_json_depth", d.max_json_depth, lo=1),
        max_sse_line_bytes=r.integer("max_sse_line_bytes", d.max_sse_line_bytes, lo=1),
        stream_buffer_events=r.integer("stream_buffer_events", d.stream_buffer_events, lo=1),
        max_embedding_inputs=r.integer("max_embedding_inputs", d.max_embedding_inputs, lo=1),
    )
    r.finish()
    return out


def _state(r: Reader) -> StateConfig:
    d = StateConfig()
    backend = r.string("backend", d.backend, choices=STATE_BACKENDS)
    url = r.string("url", d.url)
    if not url.startswith(REDIS_SCHEMES):
        # the value may hold a password: never echo it
        r.problem("url", "must start with redis://, rediss://, unix:// or redis+sentinel://")
        url = d.url
    sentinels = r.string_list("sentinels") or ()
    for i, node in enumerate(sentinels):
        host, sep, port = node.rpartition(":")
        if not (sep and host and port.isdigit()):
            r.problem(f"sentinels[{i}]", f"must be host:port, got {show(node)}")
    out = StateConfig(
        backend=cast(Any, backend),
        url=url,
        prefix=r.string("prefix", d.prefix),
        cluster=r.boolean("cluster", d.cluster),
        username=r.optional_string("username"),
        password=r.secret("password"),
        sentinel_master=r.optional_string("sentinel_master"),
        sentinels=sentinels,
        tls_ca_file=r.optional_string("tls_ca_file"),
        request_timeout_ms=r.number("request_timeout_ms", d.request_timeout_ms, lo=0.1, hi=10_000),
        probe_interval_s=r.number("probe_interval_s", d.probe_interval_s, lo=0.01, hi=60),
    )
    if out.cluster and (out.sentinels or url.startswith(("redis+sentinel", "rediss+sentinel"))):
        r.problem("cluster", "Redis Cluster and Sentinel are two different setups: choose one")
    if bool(out.sentinels) != bool(out.sentinel_master) and not url.startswith(
        ("redis+sentinel", "rediss+sentinel")
    ):
        r.problem("sentinels", "sentinels and sentinel_master go together")
    r.finish()
    return out


def _regions(r: Reader, default: tuple[str, ...]) -> tuple[str, ...] | None:
    if not r.has("regions"):
        r.raw("regions")
        return default
    if r.data["regions"] is None:
        r.problem("regions", "must be a list of region names, got null")
    regions = r.string_list("regions")
    if regions is None:
        return None
    if not regions:
        r.problem("regions", "must list at least one region")
        return None
    dupes = sorted({x for x in regions if regions.count(x) > 1})
    if dupes:
        r.problem("regions", f"duplicate region {', '.join(map(show, dupes))}")
        return None
    return regions


def _latency(r: Reader) -> tuple[LatencyConfig, tuple[str, ...] | None]:
    """The latency section, and the region list to check against (None if invalid)."""
    d = LatencyConfig()
    regions = _regions(r, d.regions)
    default_region = r.string("default_region", d.default_region)
    sections.region_problem(r, "default_region", default_region, regions)
    country_regions: dict[str, str] = {}
    for country, region in r.string_map("country_regions").items():
        country_regions[country.upper()] = region
        sections.region_problem(r, f"country_regions.{country}", region, regions)
    pw = r.section("prewarm")
    prewarm = PrewarmConfig(
        enabled=pw.boolean("enabled", d.prewarm.enabled),
        connections=pw.integer("connections", d.prewarm.connections, lo=0),
    )
    pw.finish()
    out = LatencyConfig(
        region_header=r.string("region_header", d.region_header, lower=True),
        default_region=default_region,
        regions=regions or d.regions,
        country_header=r.optional_string("country_header"),
        country_regions=country_regions,
        unknown_region=cast(
            Literal["default", "refuse"],
            r.string("unknown_region", d.unknown_region, choices=("default", "refuse")),
        ),
        min_samples=r.integer("min_samples", d.min_samples, lo=1),
        exploration=r.number("exploration", d.exploration, lo=0, hi=1),
        half_life_days=r.number("half_life_days", d.half_life_days, lo=0, lo_open=True),
        prewarm=prewarm,
    )
    r.finish()
    return out, regions


def _logging(r: Reader) -> LoggingConfig:
    d = LoggingConfig()
    out = LoggingConfig(
        format=cast(Any, r.string("format", d.format, choices=LOG_FORMATS, lower=True)),
        level=r.string("level", d.level, choices=LOG_LEVELS, lower=True),
    )
    r.finish()
    return out


def _known_kinds() -> list[str] | None:
    """Registered provider kinds, or None while the registry is not importable."""
    try:
        registry = importlib.import_module("gateway.providers.registry")
    except ImportError:
        return None
    kinds = getattr(registry, "kinds", None)
    if not callable(kinds):
        return None
    return sorted(str(k) for k in kinds())


def _base_url(r: Reader) -> str:
    url = r.required_string("base_url", "an http:// or https:// URL")
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError when out of range
    except ValueError:
        valid = False
    if not valid:
        # The value is not echoed: a URL may carry credentials.
        r.problem("base_url", "must be an http:// or https:// URL with a host")
    return url.rstrip("/")


def _provider(name: str, r: Reader) -> ProviderConfig:
    d = ProviderConfig(name=name, kind="", base_url="")
    kind = r.required_string("kind", "a provider kind such as openai or anthropic")
    known = _known_kinds() if kind else None
    if known is not None and kind not in known:
        r.problem(
            "kind",
            f"unknown provider kind {show(kind)} (known: {', '.join(known)})"
            + suggest(kind, known),
        )
    out = ProviderConfig(
        name=name,
        kind=kind,
        base_url=_base_url(r),
        api_key=r.secret("api_key"),
        max_connections=r.integer("max_connections", d.max_connections, lo=1),
        connect_timeout_s=r.number("connect_timeout_s", d.connect_timeout_s, lo=0, lo_open=True),
        keepalive_s=r.number("keepalive_s", d.keepalive_s, lo=0),
        http2=r.boolean("http2", d.http2),
        tls_ca_file=_ca_file(r),
        replace_cut_connections=_auto_boolean(r, "replace_cut_connections"),
        headers=r.string_map("headers"),
        options=r.mapping("options"),
    )
    r.finish()
    return out


def _auto_boolean(r: Reader, key: str) -> bool | None:
    """true, false, or "auto" (None: the gateway decides; also when the key is absent)."""
    value = r.raw(key)
    if value is MISSING or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    r.problem(key, f"must be true, false or auto, got {show(value)}")
    return None


def _ca_file(r: Reader) -> str | None:
    """A provider's own trust anchors: a readable PEM bundle, checked now, not at the
    first request."""
    path = r.optional_string("tls_ca_file")
    if path is None:
        return None
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        r.problem("tls_ca_file", f"no such file: {show(path)}")
    except (OSError, ssl.SSLError):
        r.problem("tls_ca_file", f"not a PEM certificate bundle: {show(path)}")
    return path


def _deployment(
    name: str,
    r: Reader,
    providers: Mapping[str, ProviderConfig],
    regions: Collection[str] | None,
    catalogue: Catalogue,
) -> DeploymentConfig:
    d = DeploymentConfig(name=name, provider="", model="")
    provider = r.required_string("provider", "the name of an entry in providers")
    if provider and provider not in providers:
        r.problem("provider", f"unknown provider {show(provider)}" + suggest(provider, providers))
    model = r.required_string("model", "the upstream model id")
    kind = r.string("type", d.type, choices=DEPLOYMENT_TYPES)
    # the catalogue holds chat models: an embedding deployment inherits only when it names
    # an entry (`catalogue: ...`)
    provider_kind = providers[provider].kind if provider in providers else None
    facts = deployment_facts(r, model, provider_kind if kind == "chat" else None, catalogue)
    pi = r.section("prior")
    p50 = pi.number("ttft_p50_ms", d.prior.ttft_p50_ms, lo=0, lo_open=True)
    p95 = pi.number("ttft_p95_ms", d.prior.ttft_p95_ms, lo=0, lo_open=True)
    if p95 < p50:
        pi.problem("ttft_p95_ms", f"must be >= ttft_p50_ms ({p50:g}), got {p95:g}")
    pi.finish()
    region = r.optional_string("region")
    if region is not None:
        sections.region_problem(r, "region", region, regions)
    batch_size = sections.optional_int(r, "batch_size")
    if batch_size is not None and kind != "embedding":
        r.problem("batch_size", "is for embedding deployments only (type: embedding)")
    if kind == "embedding" and facts["price"].output > 0:
        r.ctx.add(
            r.at("price") + ".output",
            "embedding deployments are priced by input tokens only; omit price.output",
        )
    out = DeploymentConfig(
        name=name,
        provider=provider,
        model=model,
        ttft_timeout_s=r.number("ttft_timeout_s", d.ttft_timeout_s, lo=0, lo_open=True),
        idle_timeout_s=r.number("idle_timeout_s", d.idle_timeout_s, lo=0, lo_open=True),
        prior=PriorConfig(ttft_p50_ms=p50, ttft_p95_ms=p95),
        region=region,
        local=r.boolean("local", d.local),
        weight=r.number("weight", d.weight, lo=0),
        error_budget=r.number("error_budget", d.error_budget, lo=0, hi=1, lo_open=True),
        drop_params=r.boolean("drop_params", d.drop_params),
        max_tokens_default=r.integer("max_tokens_default", d.max_tokens_default, lo=1),
        rpm=sections.optional_int(r, "rpm"),
        tpm=sections.optional_int(r, "tpm"),
        options=r.mapping("options"),
        type=cast(Any, kind),
        batch_size=batch_size,
        **facts,
        continuation=r.boolean("continuation", d.continuation),
    )
    r.finish()
    return out
