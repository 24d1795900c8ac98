"""`routes.<name>`: a route's deployments, strategy and its knobs (k, hedging, keep-alives,
the extra-load budget, residency, governance, tiers, resume), and the rule that a route
serves one type of deployment (chat or embedding; embeddings fall back or draw by weight).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import cast

from gateway.config import sections
from gateway.config.model import EMBEDDING_STRATEGIES, DeploymentConfig, RouteConfig
from gateway.config.validate import MISSING, Reader, kind_of, show, suggest
from gateway.strategy import STRATEGIES, Strategy


def _route_deployments(r: Reader, deployments: Collection[str]) -> tuple[str, ...] | None:
    raw = r.raw("deployments")
    if raw is MISSING or raw is None:
        r.problem("deployments", "is required (a list of deployment names)")
        return None
    if not isinstance(raw, list):
        r.problem("deployments", f"must be a list of deployment names, got {kind_of(raw)}")
        return None
    if not raw:
        r.problem("deployments", "must list at least one deployment")
        return None
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        key = f"deployments[{i}]"
        if not isinstance(item, str) or not item:
            r.problem(key, f"must be a deployment name (a string), got {show(item)}")
        elif item in seen:
            r.problem(key, f"duplicate deployment {show(item)} (also at [{seen[item]}])")
        elif item not in deployments:
            r.problem(key, f"unknown deployment {show(item)}" + suggest(item, deployments))
        else:
            seen[item] = i
    return tuple(str(item) for item in raw)


def _optional_seconds(r: Reader, key: str) -> float | None:
    """A positive duration, or None when absent or null (the feature is off)."""
    if r.raw(key) in (MISSING, None):
        return None
    return r.number(key, 1.0, lo=0, lo_open=True)


def route(
    name: str,
    r: Reader,
    deployments: Mapping[str, DeploymentConfig],
    regions: Collection[str] | None,
) -> RouteConfig:
    d = RouteConfig(name=name, deployments=())
    if name in deployments:
        r.ctx.add(
            r.path,
            "a deployment has the same name; clients address both as `model`, "
            "so the name would be ambiguous",
        )
    members = _route_deployments(r, deployments)
    strategy = r.string("strategy", d.strategy, choices=STRATEGIES)
    k = r.integer("k", d.k, lo=1)
    if members is not None and k > len(members):
        if r.has("k"):
            r.problem("k", f"must be <= the number of deployments ({len(members)}), got {k}")
        k = len(members)  # the default k is clamped to small routes
    residency = r.string_list("data_residency")
    if residency is not None:
        if not residency:
            r.problem("data_residency", "must list at least one region (omit it to allow all)")
        for i, region in enumerate(residency):
            sections.region_problem(r, f"data_residency[{i}]", region, regions)
    raw_governance = r.raw("governance")
    governance = None
    if raw_governance is not MISSING and raw_governance is not None:
        governance = sections.governance(Reader(r.ctx, r.at("governance"), raw_governance))
    out = RouteConfig(
        name=name,
        deployments=members or (),
        strategy=cast(Strategy, strategy),
        k=k,
        hedge_delay_ms=r.number("hedge_delay_ms", d.hedge_delay_ms, lo=0),
        heartbeat_after_s=_optional_seconds(r, "heartbeat_after_s"),
        max_extra_load=sections.optional_number(r, "max_extra_load"),
        min_extra_per_s=r.number("min_extra_per_s", d.min_extra_per_s, lo=0),
        data_residency=residency,
        governance=governance,
        hedge_quantile=r.number("hedge_quantile", d.hedge_quantile, lo=0, hi=1, lo_open=True),
        hedge_min_ms=r.number("hedge_min_ms", d.hedge_min_ms, lo=0),
        hedge_max_ms=r.number("hedge_max_ms", d.hedge_max_ms, lo=0, lo_open=True),
        tiers=sections.tiers(r, deployments),
        resume=r.boolean("resume", d.resume),
        max_resumes=r.integer("max_resumes", d.max_resumes, lo=1),
    )
    _route_types(r, out, deployments)
    if out.resume and any(
        deployments[m].type == "embedding" for m in out.deployments if m in deployments
    ):
        r.problem("resume", "is for chat routes (an embeddings answer arrives whole)")
    r.finish()
    return out


def _route_types(
    r: Reader, route: RouteConfig, deployments: Mapping[str, DeploymentConfig]
) -> None:
    """A route serves one type of deployment (chat or embedding), and a route of embeddings
    falls back or draws by weight: with no first token there is nothing to race or hedge on."""
    groups: list[tuple[str, tuple[str, ...], str]] = [("", route.deployments, route.strategy)]
    groups += [
        (f"tiers[{i}].", tier.deployments, tier.strategy) for i, tier in enumerate(route.tiers)
    ]
    first: tuple[str, str] | None = None  # (path, type) of the route's first known deployment
    for prefix, members, strategy in groups:
        types = {deployments[m].type for m in members if m in deployments}
        for i, member in enumerate(members):
            dep = deployments.get(member)
            if dep is None:
                continue
            if first is None:
                first = (f"{prefix}deployments[{i}]", dep.type)
            elif dep.type != first[1]:
                r.problem(
                    f"{prefix}deployments[{i}]",
                    f"{show(member)} is a {dep.type} deployment but {first[0]} is {first[1]}; "
                    "a route serves one type (chat or embedding)",
                )
        if "embedding" in types and strategy not in EMBEDDING_STRATEGIES:
            r.problem(
                f"{prefix}strategy",
                f"{show(strategy)} cannot serve embedding deployments: there is no first "
                "token to race on (use fallback or weighted)",
            )
