"""Config sections added after the first release: health, routing, tiers, output filtering."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, cast

from gateway.config.model import (
    GovernanceConfig,
    HealthConfig,
    KeyPolicyConfig,
    OutputFilterConfig,
    RoutingConfig,
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
    r: Reader, key_count: int = 0, regions: Collection[str] | None = None
) -> GovernanceConfig:
    pii = pii_actions(r)
    output = output_filter(r.section("output"))
    keys: dict[str, KeyPolicyConfig] = {}
    for key_id, kr in r.entries("keys"):
        known = [f"key-{i + 1}" for i in range(key_count)]
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
