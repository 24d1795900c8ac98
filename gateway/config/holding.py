"""Which routes hold a deployment, and the strictest residency of several routes: what a
deployment named directly as `model` is bound by (routing's table and the governance gate
both ask)."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config.model import Config


def routes_holding(config: Config) -> dict[str, tuple[str, ...]]:
    """deployment -> the routes that may send it requests (its own list or a tier's)."""
    out: dict[str, list[str]] = {}
    for route in config.routes.values():
        members = set(route.deployments)
        for tier in route.tiers:
            members.update(tier.deployments)
        for name in sorted(members):
            out.setdefault(name, []).append(route.name)
    return {name: tuple(routes) for name, routes in out.items()}


def strictest_residency(
    residencies: Iterable[tuple[str, ...] | None],
) -> tuple[str, ...] | None:
    """The regions every restricting residency allows (None: nothing restricts)."""
    out: tuple[str, ...] | None = None
    for regions in residencies:
        if regions is not None:
            out = regions if out is None else tuple(r for r in out if r in regions)
    return out
