"""`race-gateway check-config FILE`: validate a config file and summarize it."""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.config.loader import load_config
from gateway.config.model import Config, KeyConfig
from gateway.config.validate import ConfigError, ConfigFileError


def check_config_main(path: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print a summary and return 0, or print every problem and return 1."""
    try:
        config = load_config(path)
    except ConfigFileError as e:
        for problem in e.problems:
            print(f"config {problem}", file=err)
        return 1
    except ConfigError as e:
        print(f"config {path} has {len(e.problems)} problem(s):", file=err)
        for problem in e.problems:
            print(f"  {problem}", file=err)
        return 1
    problems = route_tier_problems(config)
    if problems:
        print(f"config {path} has {len(problems)} problem(s):", file=err)
        for problem in problems:
            print(f"  {problem}", file=err)
        return 1
    print(summarize(config), file=out)
    return 0


def route_tier_problems(config: Config) -> list[str]:
    """Unreachable or overlapping tiers (checked here: it needs the routing layer's logic)."""
    from gateway.routing.planner import tiers_of
    from gateway.routing.tiers import tier_problems

    problems: list[str] = []
    for name, route in config.routes.items():
        if route.tiers:
            problems += tier_problems(tiers_of(route.tiers), path=f"routes.{name}.tiers")
    return problems


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summarize(config: Config) -> str:
    """A short human summary (never any secret value), for `check-config`."""
    host = config.listen.host
    host = f"[{host}]" if ":" in host else host
    auth = _plural(len(config.auth.keys), "key") if config.auth.enabled else "off"
    lines = [
        f"config OK: listen {host}:{config.listen.port}, "
        f"{_plural(len(config.providers), 'provider')}, "
        f"{_plural(len(config.deployments), 'deployment')}, "
        f"{_plural(len(config.routes), 'route')}, "
        f"state={config.state.backend}, auth={auth}"
    ]
    for route in config.routes.values():
        how: str = route.strategy
        if route.strategy in ("race", "hedge"):
            how += f" k={route.k}"
        line = f"  route {route.name}: {how} -> {', '.join(route.deployments)}"
        if route.data_residency is not None:
            line += f" (residency: {', '.join(route.data_residency)})"
        lines.append(line)
    if config.routing.allow_direct_deployments:
        lines.append(
            "  deployments may be named directly as `model` (routing.allow_direct_deployments)"
        )
    for key in config.auth.keys:
        scope = _key_line(key)
        if scope is not None:
            lines.append(scope)
    return "\n".join(lines)


def _key_line(key: KeyConfig) -> str | None:
    """What a key may do, when it is more (or less) than the defaults."""
    parts = []
    if key.routes is not None:
        parts.append(f"routes {', '.join(key.routes)}")
    for label, value in (("rpm", key.rpm), ("tpm", key.tpm)):
        if value is not None:
            parts.append(f"{label} {value}")
    if key.budget_daily_usd is not None:
        parts.append(f"${key.budget_daily_usd:g}/day")
    if key.budget_monthly_usd is not None:
        parts.append(f"${key.budget_monthly_usd:g}/month")
    if key.pii:
        parts.append("pii " + ", ".join(f"{k}={v}" for k, v in key.pii.items()))
    if key.data_residency is not None:
        parts.append(f"residency {', '.join(key.data_residency)}")
    if key.allow_direct_deployments is not None:
        parts.append(f"direct deployments {'on' if key.allow_direct_deployments else 'off'}")
    if not parts:
        return None
    return f"  key {key.name}: " + "; ".join(parts)
