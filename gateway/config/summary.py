"""A short human summary of a config (never any secret value), for `check-config`."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.config.model import Config, KeyConfig


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
        first = config.deployments.get(route.deployments[0]) if route.deployments else None
        if first is not None and first.type == "embedding":
            line += " [embeddings]"
        if route.data_residency is not None:
            line += f" (residency: {', '.join(route.data_residency)})"
        lines.append(line)
    if config.stream.coalesce_ms > 0:
        window = config.stream.coalesce_ms
        lines.append(f"  stream: writes coalesced per {window:g} ms window after the first token")
    if config.cors.enabled:
        lines.append(f"  cors: {', '.join(config.cors.allow_origins)}")
    if config.routing.allow_direct_deployments:
        lines.append(
            "  deployments may be named directly as `model` (routing.allow_direct_deployments)"
        )
    for key in config.auth.keys:
        scope = _key_line(key)
        if scope is not None:
            lines.append(scope)
    traces = config.telemetry.traces
    if traces.enabled:  # the host only: the URL may hold credentials
        host = urlsplit(traces.endpoint).hostname or "?"
        content = ", with content" if traces.include_content else ""
        lines.append(
            f"  traces: OTLP/HTTP to {host}, sample_ratio={traces.sample_ratio:g}{content}"
        )
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
