"""The checks a config passes before it serves, beyond its own validation: routing's tier
checks, the providers' embeddings support (config sits below routing and providers) and
models already shut down. `check-config` and config reloads both run them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from gateway.catalogue.lifecycle import Lifecycle, today_utc
from gateway.config.facts import lifecycles
from gateway.config.loader import parse_config
from gateway.config.model import Config
from gateway.config.validate import ConfigError, ConfigFileError, parse_yaml
from gateway.providers.base import ProviderSettings, can_embed
from gateway.providers.registry import create
from gateway.routing.planner import tiers_of
from gateway.routing.tiers import tier_problems


def read_config(path: str | os.PathLike[str]) -> tuple[Config, bytes]:
    """Read, parse and validate a config file (`ConfigError` lists every problem); also the
    bytes it was built from (a reload hashes them)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigFileError([f"{path}: cannot read: {e.strerror or e}"]) from None
    return parse_config(parse_yaml(data, path), base_dir=Path(path).parent), data


def config_problems(config: Config, today: dt.date | None = None) -> list[str]:
    """What a valid config may still get wrong for serving: unreachable tiers, embeddings
    on a provider without them, models already shut down."""
    problems = route_tier_problems(config) + embedding_problems(config)
    for name, life in lifecycles(config, today or today_utc()):
        if life.state == "retired":
            problems.append(retired_problem(config, name, life))
    return problems


def retired_problem(config: Config, name: str, life: Lifecycle) -> str:
    return f"deployments.{name}: {life.describe(config.deployments[name].model)}"


def load_checked(path: str | os.PathLike[str]) -> tuple[Config, bytes]:
    """`read_config`, then `config_problems` (raised as one `ConfigError`): what a reload
    accepts, with the messages of `check-config`."""
    config, data = read_config(path)
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)
    return config, data


def route_tier_problems(config: Config) -> list[str]:
    """Unreachable or overlapping tiers (checked here: it needs the routing layer's logic)."""
    problems: list[str] = []
    for name, route in config.routes.items():
        if route.tiers:
            problems += tier_problems(tiers_of(route.tiers), path=f"routes.{name}.tiers")
    return problems


def embedding_problems(config: Config) -> list[str]:
    """Embedding deployments on a provider whose adapter cannot embed (Anthropic)."""
    if not any(dep.type == "embedding" for dep in config.deployments.values()):
        return []
    problems: list[str] = []
    verdicts: dict[str, bool] = {}
    for name, dep in config.deployments.items():
        provider = config.providers.get(dep.provider)
        if dep.type != "embedding" or provider is None:
            continue
        if dep.provider not in verdicts:
            settings = ProviderSettings(dep.provider, provider.kind, provider.base_url)
            try:
                verdicts[dep.provider] = can_embed(create(settings))
            except (KeyError, ValueError):  # unknown kind or bad options: reported by the loader
                verdicts[dep.provider] = True
        if not verdicts[dep.provider]:
            problems.append(
                f"deployments.{name}.type: provider {dep.provider!r} (kind {provider.kind!r}) "
                "has no embeddings API"
            )
    return problems
