"""`race-gateway check-config FILE`: validate a config file and summarize it."""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.config.loader import load_config
from gateway.config.model import Config
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
    for warning in heartbeat_warnings(config):
        print(f"warning: {warning}", file=err)
    return 0


def heartbeat_warnings(config: Config) -> list[str]:
    """Routes whose keep-alives can start before a first-token timeout has decided.

    A keep-alive sends the status line (200) and headers; an attempt's failure after
    that can only be an in-stream error, so a request that fails before its first token
    loses its HTTP status (504 on timeouts) for monitors, load balancers and SDK retries.
    """
    warnings = []
    for name, route in config.routes.items():
        after = route.heartbeat_after_s
        if after is None:
            continue
        members = dict.fromkeys(route.deployments)
        for tier in route.tiers:
            members.update(dict.fromkeys(tier.deployments))
        slowest = max(members, key=lambda d: config.deployments[d].ttft_timeout_s)
        timeout = config.deployments[slowest].ttft_timeout_s
        if after <= timeout:
            warnings.append(
                f"routes.{name}.heartbeat_after_s: {after:g} s is not above the "
                f"ttft_timeout_s of {slowest} ({timeout:g} s): keep-alives commit HTTP 200 "
                "before the first-token timeout decides, so a streamed request whose "
                "candidates all fail before their first token gets 200 and an in-stream "
                "error instead of its error status (504 on timeouts). Raise it above "
                f"{timeout:g} s, or leave it unset unless a proxy cuts idle connections."
            )
    return warnings


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
    auth = _plural(len(config.auth.keys), "key") if config.auth.keys else "off"
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
    return "\n".join(lines)
