"""The checks a config passes before it serves, beyond its own validation: routing's tier
checks and the providers' embeddings support (config sits below routing and providers).
`check-config` and config reloads both run them.
"""

from __future__ import annotations

import os

from gateway.config.loader import parse_config
from gateway.config.model import Config
from gateway.config.validate import ConfigError, ConfigFileError, parse_yaml
from gateway.providers.base import ProviderSettings, can_embed
from gateway.providers.registry import create
from gateway.routing.planner import tiers_of
from gateway.routing.tiers import tier_problems


def load_checked(path: str | os.PathLike[str]) -> tuple[Config, bytes]:
    """Read, parse and check a config file as `check-config` does (a `ConfigError` lists
    every problem); also the bytes it was built from (a reload hashes them)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigFileError([f"{path}: cannot read: {e.strerror or e}"]) from None
    config = parse_config(parse_yaml(data, path))
    problems = route_tier_problems(config) + embedding_problems(config)
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
