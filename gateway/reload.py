"""What a config reload changes: deployment identity, and the difference between two configs.

A deployment's *identity* is what its learned state is about: the upstream it talks to
and the model it asks for, i.e. (provider kind, provider base_url, model, type). Its
name is the key. While a deployment keeps its name and identity across a reload, its
state carries over (latency profile, circuit breaker, weight, spend, model version) even
when its price, timeouts, prior, budget, rpm/tpm, provider name or API key change: the
same model behind the same endpoint is still measured by the same samples. A deployment
whose identity changed is new to the gateway: its state starts afresh.

A provider's connection pool is kept when its pool settings (base_url, max_connections,
connect_timeout_s, keepalive_s) did not change; the API key, headers and options are
per request and do not touch the pool.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any

from gateway.config.model import Config, ProviderConfig, replaces_cut_connections
from gateway.value_class import value_class

# Sections a running server cannot apply: they shape its socket or its aiohttp app.
RESTART_ONLY = ("listen", "cors", "logging")
RESTART_ONLY_LIMITS = ("max_body_bytes",)  # limits read by the app, not per request
OWN_FIELDS = ("providers", "deployments", "routes", "sim")  # diffed name by name


def deployment_identity(config: Config, name: str) -> tuple[str, str, str, str]:
    dep = config.deployments[name]
    provider = config.providers[dep.provider]
    return (provider.kind, provider.base_url.rstrip("/"), dep.model, dep.type)


def pool_settings(provider: ProviderConfig) -> tuple[Any, ...]:
    return (
        provider.base_url.rstrip("/"),
        provider.max_connections,
        provider.connect_timeout_s,
        provider.keepalive_s,
        provider.http2,
        provider.tls_ca_file,
        replaces_cut_connections(provider),
    )


@value_class
class ConfigChanges:
    """What differs between the config that serves and the one that replaces it."""

    deployments_added: tuple[str, ...] = ()
    deployments_removed: tuple[str, ...] = ()
    deployments_replaced: tuple[str, ...] = ()  # same name, new identity: state starts afresh
    deployments_changed: tuple[str, ...] = ()  # same identity, other settings: state kept
    routes_added: tuple[str, ...] = ()
    routes_removed: tuple[str, ...] = ()
    routes_changed: tuple[str, ...] = ()
    providers_added: tuple[str, ...] = ()
    providers_removed: tuple[str, ...] = ()
    providers_changed: tuple[str, ...] = ()
    pools_replaced: tuple[str, ...] = ()  # providers whose pool drains and closes
    sections_changed: tuple[str, ...] = ()  # other top-level sections (auth, governance, ...)
    restart_required: tuple[str, ...] = field(default=())  # changes kept until a restart

    @classmethod
    def between(cls, old: Config, new: Config) -> ConfigChanges:
        old_deps, new_deps = old.deployments, new.deployments
        kept = [n for n in new_deps if n in old_deps]
        replaced = [n for n in kept if deployment_identity(old, n) != deployment_identity(new, n)]
        changed = [n for n in kept if n not in replaced and old_deps[n] != new_deps[n]]
        providers_kept = [n for n in new.providers if n in old.providers]
        pools_replaced = [
            n
            for n in old.providers
            if n not in new.providers
            or pool_settings(old.providers[n]) != pool_settings(new.providers[n])
        ]
        sections = [
            f.name
            for f in fields(Config)
            if f.name not in OWN_FIELDS + RESTART_ONLY
            and getattr(old, f.name) != getattr(new, f.name)
        ]
        restart = [s for s in RESTART_ONLY if getattr(old, s) != getattr(new, s)]
        restart += [
            f"limits.{k}"
            for k in RESTART_ONLY_LIMITS
            if getattr(old.limits, k) != getattr(new.limits, k)
        ]
        return cls(
            deployments_added=_added(old_deps, new_deps),
            deployments_removed=_added(new_deps, old_deps),
            deployments_replaced=tuple(replaced),
            deployments_changed=tuple(changed),
            routes_added=_added(old.routes, new.routes),
            routes_removed=_added(new.routes, old.routes),
            routes_changed=tuple(
                n for n in new.routes if n in old.routes and old.routes[n] != new.routes[n]
            ),
            providers_added=_added(old.providers, new.providers),
            providers_removed=_added(new.providers, old.providers),
            providers_changed=tuple(
                n for n in providers_kept if old.providers[n] != new.providers[n]
            ),
            pools_replaced=tuple(pools_replaced),
            sections_changed=tuple(sections),
            restart_required=tuple(restart),
        )

    @property
    def fresh_state(self) -> tuple[str, ...]:
        """Deployments whose learned state is dropped: removed or given a new identity."""
        return self.deployments_removed + self.deployments_replaced

    def summary(self) -> dict[str, list[str]]:
        """The non-empty fields, for the reload log line and the admin answer."""
        out: dict[str, list[str]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = list(value)
        return out


def _added(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(n for n in new if n not in old)
