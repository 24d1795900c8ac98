"""A short human summary of a config (never any secret value), for `check-config`."""

from __future__ import annotations

from gateway.config.model import Config


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
        first = config.deployments.get(route.deployments[0]) if route.deployments else None
        if first is not None and first.type == "embedding":
            line += " [embeddings]"
        if route.data_residency is not None:
            line += f" (residency: {', '.join(route.data_residency)})"
        lines.append(line)
    if config.cors.enabled:
        lines.append(f"  cors: {', '.join(config.cors.allow_origins)}")
    return "\n".join(lines)
