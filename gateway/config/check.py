"""`race-gateway check-config FILE`: validate a config file and summarize it."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TextIO

from gateway.catalogue.lifecycle import today_utc
from gateway.config.facts import lifecycles
from gateway.config.loader import load_config
from gateway.config.model import Config
from gateway.config.validate import ConfigError, ConfigFileError


def check_config_main(
    path: str,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    today: dt.date | None = None,
) -> int:
    """Print a summary and return 0, or print every problem and return 1. Deployments whose
    model is deprecated or shuts down within 30 days are warnings; a model already shut
    down is a problem."""
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
    problems = route_tier_problems(config) + auto_regress_problems(config)
    for name, life in lifecycles(config, today or today_utc()):
        text = f"deployments.{name}: {life.describe(config.deployments[name].model)}"
        if life.state == "retired":
            problems.append(text)
        else:
            print(f"warning: {text}", file=err)
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


def auto_regress_problems(config: Config) -> list[str]:
    """The automatic regression suite must load (the server would run without it)."""
    if config.auto_regress is None:
        return []
    from gateway.regress.suite import SuiteError, load_suite

    try:
        load_suite(config.auto_regress.suite)
    except SuiteError as exc:
        return [f"auto_regress.suite: {p}" for p in exc.problems]
    return []


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
