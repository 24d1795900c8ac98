"""Config sections added after the first release: health, routing, tiers, output filtering,
CORS, the Responses door's store."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, cast

from gateway.config.model import (
    AutoRegressConfig,
    CorsConfig,
    GovernanceConfig,
    HealthConfig,
    KeyPolicyConfig,
    OutputFilterConfig,
    ResponsesConfig,
    RoutingConfig,
    StreamConfig,
    TierConfig,
)
from gateway.config.validate import MISSING, Reader, kind_of, show, suggest
from gateway.strategy import STRATEGIES, Strategy

DETECTOR_TYPES = ("email", "phone", "card", "iban", "national_id", "ip", "secret")
PII_TYPES = DETECTOR_TYPES
PII_ACTIONS = ("redact", "block", "local_only", "allow")


def optional_int(r: Reader, key: str, lo: int = 1) -> int | None:
    if r.raw(key) in (MISSING, None):
        return None
    return r.integer(key, lo, lo=lo)


def optional_number(r: Reader, key: str, lo: float = 0.0) -> float | None:
    if r.raw(key) in (MISSING, None):
        return None
    return r.number(key, lo, lo=lo)


def optional_bool(r: Reader, key: str) -> bool | None:
    if r.raw(key) in (MISSING, None):
        return None
    return r.boolean(key, False)


def health(r: Reader) -> HealthConfig:
    d = HealthConfig()
    out = HealthConfig(
        window=r.integer("window", d.window, lo=1),
        min_requests=r.integer("min_requests", d.min_requests, lo=1),
        cooldown_s=r.number("cooldown_s", d.cooldown_s, lo=0, lo_open=True),
        half_open_probes=r.integer("half_open_probes", d.half_open_probes, lo=1),
        probe_interval_s=r.number("probe_interval_s", d.probe_interval_s, lo=0, lo_open=True),
    )
    if out.min_requests > out.window:
        r.problem("min_requests", f"must be <= health.window ({out.window})")
    r.finish()
    return out


def routing(r: Reader) -> RoutingConfig:
    d = RoutingConfig()
    out = RoutingConfig(
        reasoning_header=r.string("reasoning_header", d.reasoning_header, lower=True),
        weights_interval_s=r.number("weights_interval_s", d.weights_interval_s, lo=0, lo_open=True),
        key_rpm=optional_int(r, "key_rpm"),
        key_tpm=optional_int(r, "key_tpm"),
        key_daily_budget_usd=optional_number(r, "key_daily_budget_usd"),
        allow_direct_deployments=r.boolean("allow_direct_deployments", d.allow_direct_deployments),
        feedback_window_s=r.number("feedback_window_s", d.feedback_window_s, lo=0, lo_open=True),
    )
    r.finish()
    return out


def responses(r: Reader) -> ResponsesConfig:
    d = ResponsesConfig()
    out = ResponsesConfig(
        store_ttl_s=r.number("store_ttl_s", d.store_ttl_s, lo=0, lo_open=True),
        max_stored=r.integer("max_stored", d.max_stored, lo=1),
        max_stored_mb=r.number("max_stored_mb", d.max_stored_mb, lo=0, lo_open=True),
        store_by_default=r.boolean("store_by_default", d.store_by_default),
    )
    r.finish()
    return out


MAX_COALESCE_MS = 1000.0  # a longer window would read as a stalled stream to a person


def stream(r: Reader) -> StreamConfig:
    d = StreamConfig()
    out = StreamConfig(
        coalesce_ms=r.number("coalesce_ms", d.coalesce_ms, lo=0, hi=MAX_COALESCE_MS),
        relay=r.boolean("relay", d.relay),
    )
    r.finish()
    return out


def output_filter(r: Reader) -> OutputFilterConfig | None:
    if not r.given:
        return None
    d = OutputFilterConfig()
    action = r.string("action", d.action, choices=("redact", "stop"))
    detectors = r.string_list("detectors") or ()
    for i, name in enumerate(detectors):
        if name not in DETECTOR_TYPES:
            r.problem(
                f"detectors[{i}]", f"unknown detector {show(name)}" + suggest(name, DETECTOR_TYPES)
            )
    patterns = r.string_map("patterns")
    for name, pattern in patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            r.problem(f"patterns.{name}", f"invalid regular expression: {exc}")
    out = OutputFilterConfig(
        action=cast(Any, action),
        window=r.integer("window", d.window, lo=1, hi=4096),
        detectors=detectors,
        patterns=patterns,
    )
    r.finish()
    return out


def tiers(r: Reader, deployments: Collection[str]) -> tuple[TierConfig, ...]:
    """`routes.<name>.tiers`: a list of {name, when: {...}, strategy, deployments, k}."""
    raw = r.raw("tiers")
    if raw is MISSING or raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        r.problem("tiers", f"must be a non-empty list of tiers, got {kind_of(raw)}")
        return ()
    out: list[TierConfig] = []
    for i, item in enumerate(raw):
        t = Reader(r.ctx, r.at(f"tiers[{i}]"), item)
        name = t.string("name", f"tier{i}")
        members = t.string_list("deployments") or ()
        if not members:
            t.problem("deployments", "must list at least one deployment")
        for j, dep in enumerate(members):
            if dep not in deployments:
                t.problem(
                    f"deployments[{j}]",
                    f"unknown deployment {show(dep)}" + suggest(dep, deployments),
                )
        strategy = t.string("strategy", "fallback", choices=STRATEGIES)
        k = t.integer("k", min(2, max(1, len(members))), lo=1)
        if members and k > len(members):
            t.problem("k", f"must be <= the number of deployments ({len(members)}), got {k}")
        w = t.section("when")
        tier = TierConfig(
            name=name,
            deployments=members,
            strategy=cast(Strategy, strategy),
            k=min(k, max(1, len(members))),
            min_prompt_tokens=optional_int(w, "min_prompt_tokens", lo=0),
            max_prompt_tokens=optional_int(w, "max_prompt_tokens", lo=0),
            images=optional_bool(w, "images"),
            tools=optional_bool(w, "tools"),
            reasoning=optional_bool(w, "reasoning"),
        )
        if (
            tier.min_prompt_tokens is not None
            and tier.max_prompt_tokens is not None
            and tier.min_prompt_tokens > tier.max_prompt_tokens
        ):
            w.problem("max_prompt_tokens", "must be >= min_prompt_tokens")
        w.finish()
        t.finish()
        out.append(tier)
    return tuple(out)


def region_problem(r: Reader, key: str, region: str, regions: Collection[str] | None) -> None:
    if regions is not None and region not in regions:
        known = ", ".join(regions)
        r.problem(key, f"unknown region {show(region)} (latency.regions: {known})")


def pii_actions(r: Reader) -> dict[str, str]:
    pii: dict[str, str] = {}
    for kind, action in r.string_map("pii").items():
        if kind not in PII_TYPES:
            r.problem(
                f"pii.{kind}",
                f"unknown PII type (known: {', '.join(PII_TYPES)})" + suggest(kind, PII_TYPES),
            )
        elif action not in PII_ACTIONS:
            r.problem(
                f"pii.{kind}",
                f"must be one of {', '.join(PII_ACTIONS)}, got {show(action)}"
                + suggest(action, PII_ACTIONS),
            )
        else:
            pii[kind] = action
    return pii


def governance(
    r: Reader, key_names: Collection[str] = (), regions: Collection[str] | None = None
) -> GovernanceConfig:
    pii = pii_actions(r)
    output = output_filter(r.section("output"))
    keys: dict[str, KeyPolicyConfig] = {}
    for key_id, kr in r.entries("keys"):
        known = list(key_names)
        if key_id not in known:
            kr.ctx.add(
                kr.path,
                f"unknown key id (auth.keys gives {', '.join(known) or 'none'})"
                + suggest(key_id, known),
            )
        residency = kr.string_list("data_residency")
        for i, region in enumerate(residency or ()):
            region_problem(kr, f"data_residency[{i}]", region, regions)
        keys[key_id] = KeyPolicyConfig(pii=pii_actions(kr), data_residency=residency)
        kr.finish()
    r.finish()
    return GovernanceConfig(pii=pii, output=output, keys=keys)


def auto_regress(r: Reader, base_dir: Path | None) -> AutoRegressConfig | None:
    """`auto_regress: {suite, policy, reports_dir, baseline, min_interval_s, ...}`."""
    if not r.given:
        return None

    def path(key: str) -> str | None:
        value = r.optional_string(key)
        if value is None or base_dir is None:
            return value
        return str(base_dir / value)

    d = AutoRegressConfig(suite="")
    suite = r.required_string("suite", "the path of a regression suite YAML")
    out = AutoRegressConfig(
        suite=str(base_dir / suite) if suite and base_dir is not None else suite,
        policy=cast(Any, r.string("policy", d.policy, choices=("alert", "quarantine"))),
        reports_dir=path("reports_dir"),
        baseline=path("baseline"),
        min_interval_s=r.number("min_interval_s", d.min_interval_s, lo=0),
        lease_s=r.number("lease_s", d.lease_s, lo=1),
        repeat=r.integer("repeat", d.repeat, lo=1),
        concurrency=r.integer("concurrency", d.concurrency, lo=1),
        timeout_s=r.number("timeout_s", d.timeout_s, lo=0, lo_open=True),
    )
    r.finish()
    return out


# scheme://host[:port|:*]: what a browser sends as `Origin` (lowercase, no path).
_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://"
    r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)"
    r"(:(?P<port>[0-9]{1,5}|\*))?\Z"
)
_HEADER_NAME = re.compile(r"[!#$%&'+.^_`|~0-9a-z-]+\*?\Z")  # an RFC 9110 token; `*`: a prefix
CORS_MAX_AGE_S = 86400


def _origin_problem(origin: str) -> str | None:
    match = _ORIGIN.match(origin)
    if match is None:
        scheme, sep, rest = origin.partition("://")
        if sep and "/" in rest and _ORIGIN.match(f"{scheme}://{rest.split('/')[0]}"):
            return f"an origin has no path: write {show(scheme + '://' + rest.split('/')[0])}"
        return (
            "must be an origin like 'https://chat.example.com' or 'http://localhost:*' "
            f"(scheme://host[:port], a port of * is any port), got {show(origin)}"
        )
    port = match["port"]
    if port is not None and port != "*" and not 1 <= int(port) <= 65535:
        return f"port must be 1..65535 or *, got {show(origin)}"
    return None


def _cors_origins(r: Reader) -> tuple[str, ...]:
    raw = r.raw("allow_origins")
    if raw is MISSING or raw is None:
        r.problem(
            "allow_origins", "is required: a list of origins, or '*' (omit `cors` to turn CORS off)"
        )
        return ()
    if raw == "*":
        return ("*",)
    if not isinstance(raw, list) or not raw:
        r.problem("allow_origins", f"must be a non-empty list of origins, or '*', got {show(raw)}")
        return ()
    out: list[str] = []
    for i, item in enumerate(raw):
        key = f"allow_origins[{i}]"
        if not isinstance(item, str) or not item.strip():
            r.problem(key, f"must be an origin (a string), got {show(item)}")
            continue
        origin = item.strip().lower()
        problem = None
        if origin == "*":
            if len(raw) > 1:
                problem = "'*' allows every origin: write `allow_origins: '*'` alone"
        else:
            problem = _origin_problem(origin)
        if problem is None and origin in out:
            problem = f"duplicate of allow_origins[{out.index(origin)}]"
        if problem is not None:
            r.problem(key, problem)
        out.append(origin)
    return tuple(out)


def _cors_headers(
    r: Reader, key: str, default: Sequence[str], *, prefixes: bool
) -> tuple[str, ...]:
    """A list of header names (lowercased), or '*'; `prefixes` allows names ending in `*`."""
    raw = r.raw(key)
    if raw is MISSING or raw is None:
        return tuple(default)
    if raw == "*":
        return ("*",)
    if not isinstance(raw, list):
        r.problem(key, f"must be a list of header names, or '*', got {show(raw)}")
        return tuple(default)
    out: list[str] = []
    for i, item in enumerate(raw):
        name = item.strip().lower() if isinstance(item, str) else ""
        if not _HEADER_NAME.match(name):
            r.problem(f"{key}[{i}]", f"must be a header name, got {show(item)}")
        elif name.endswith("*") and not prefixes:
            r.problem(
                f"{key}[{i}]",
                f"a browser does not read prefixes here: list each name, got {show(item)}",
            )
        elif name not in out:
            out.append(name)
    return tuple(out)


def cors(r: Reader, own_headers: Sequence[str] = ()) -> CorsConfig:
    """`cors:`; `own_headers` are request headers the gateway reads (region, reasoning hint),
    allowed by default beside what the SDKs send."""
    if not r.given:
        return CorsConfig()
    d = CorsConfig()
    default_allow = tuple(dict.fromkeys((*d.allow_headers, *own_headers)))
    if r.has("allow_credentials"):
        r.raw("allow_credentials")
        r.problem(
            "allow_credentials",
            "is not supported: gateway keys travel in the Authorization header, which a page "
            "sends without credentials mode; cookies are never read",
        )
    out = CorsConfig(
        allow_origins=_cors_origins(r),
        allow_headers=_cors_headers(r, "allow_headers", default_allow, prefixes=True),
        expose_headers=_cors_headers(r, "expose_headers", d.expose_headers, prefixes=False),
        max_age_s=r.integer("max_age_s", d.max_age_s, lo=0, hi=CORS_MAX_AGE_S),
    )
    r.finish()
    return out
