"""`auth.keys`: gateway keys, as plain secrets or as objects with a scope.

An entry is a secret (a literal, `env:NAME`, or `sha256:<64 hex>` so the config holds no
secret) or a mapping:

    - key: env:TEAM_A_KEY          # or sha256:<hex>
      name: team-a                 # id in logs, metrics, spend (default key-N)
      routes: [chat]               # routes (or deployments) it may use; default all
      rpm: 60
      tpm: 100000
      budget_usd: {daily: 5, monthly: 100}   # a number is a daily budget
      pii: {email: block}          # overrides the route's PII actions
      data_residency: [eu]         # narrows the route's residency
      allow_direct_deployments: true
      metadata: {team: a}

`key_fields` reads everything but the secret; the admin API uses it for runtime keys, so a
runtime key is validated by the same rules and messages.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from gateway.config import sections
from gateway.config.model import AuthConfig, GovernanceConfig, KeyConfig, Secret
from gateway.config.validate import MISSING, Reader, kind_of, show, suggest

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RESERVED_NAMES = frozenset({"anonymous", "admin", "regress"})  # ids the gateway uses itself
_SHA256 = re.compile(r"sha256:([0-9a-fA-F]{64})\Z")
KEY_FIELDS = (
    "routes",
    "rpm",
    "tpm",
    "budget_usd",
    "pii",
    "data_residency",
    "allow_direct_deployments",
    "metadata",
)


def digest_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not KEY_NAME.match(name):
        return (
            f"must be 1-64 characters of letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit), got {show(name)}"
        )
    if name in RESERVED_NAMES:
        return f"{show(name)} is reserved (also: {', '.join(sorted(RESERVED_NAMES - {name}))})"
    return None


def key_fields(
    r: Reader,
    name: str,
    digest: bytes,
    secret: Secret | None,
    targets: Collection[str],
    regions: Collection[str] | None,
) -> KeyConfig:
    """Every field of a key object but its secret (`targets`: route and deployment names)."""
    routes = r.string_list("routes")
    for i, target in enumerate(routes or ()):
        if target not in targets:
            r.problem(f"routes[{i}]", f"unknown route {show(target)}" + suggest(target, targets))
    residency = r.string_list("data_residency")
    if residency is not None and not residency:
        r.problem("data_residency", "must list at least one region (omit it to allow all)")
    for i, region in enumerate(residency or ()):
        sections.region_problem(r, f"data_residency[{i}]", region, regions)
    daily, monthly = _budget(r)
    return KeyConfig(
        name=name,
        digest=digest,
        secret=secret,
        routes=routes,
        rpm=sections.optional_int(r, "rpm"),
        tpm=sections.optional_int(r, "tpm"),
        budget_daily_usd=daily,
        budget_monthly_usd=monthly,
        pii=sections.pii_actions(r),
        data_residency=residency,
        allow_direct_deployments=sections.optional_bool(r, "allow_direct_deployments"),
        metadata=r.mapping("metadata"),
    )


def _budget(r: Reader) -> tuple[float | None, float | None]:
    raw = r.raw("budget_usd")
    if raw is MISSING or raw is None:
        return None, None
    if isinstance(raw, dict):
        b = r.section("budget_usd")
        daily = sections.optional_number(b, "daily")
        monthly = sections.optional_number(b, "monthly")
        b.finish()
        return daily, monthly
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        r.problem("budget_usd", f"must be a number (daily) or {{daily, monthly}}, got {show(raw)}")
        return None, None
    daily = sections.optional_number(r, "budget_usd")
    return daily, None


def _secret(r: Reader, path: str, value: object) -> tuple[bytes, Secret | None] | None:
    if isinstance(value, str):
        match = _SHA256.match(value)
        if match is not None:
            return bytes.fromhex(match.group(1)), None
        if value.startswith("sha256:"):
            r.ctx.add(path, "sha256: needs 64 hex digits (the SHA-256 of the key)")
            return None
    secret = r.ctx.resolve_secret(path, value)
    return None if secret is None else (digest_of(secret.reveal()), secret)


def auth(
    r: Reader,
    targets: Collection[str],
    regions: Collection[str] | None,
    runtime_keys: bool,
) -> AuthConfig:
    """The `auth` section; `runtime_keys`: the admin API can add keys (admin.key is set)."""
    keys: list[KeyConfig] = []
    raw = r.raw("keys")
    if raw is not MISSING and raw is not None and not isinstance(raw, list):
        r.problem("keys", f"must be a list of keys (a secret or a mapping), got {kind_of(raw)}")
    elif r.given and not raw and not runtime_keys:
        r.problem(
            "keys",
            "at least one key is required (omit `auth` to disable auth, "
            "or set admin.key to create keys at runtime)",
        )
    elif isinstance(raw, list):
        seen_digests: dict[bytes, int] = {}
        seen_names: dict[str, int] = {}
        for i, item in enumerate(raw):
            key = _entry(r, i, item, targets, regions)
            if key is None:
                continue
            if key.digest in seen_digests:
                r.problem(f"keys[{i}]", f"duplicate of auth.keys[{seen_digests[key.digest]}]")
            seen_digests.setdefault(key.digest, i)
            if key.name in seen_names:
                r.problem(
                    f"keys[{i}].name",
                    f"duplicate key name {show(key.name)} (also auth.keys[{seen_names[key.name]}])",
                )
            seen_names.setdefault(key.name, i)
            keys.append(key)
    refresh_s = r.number("refresh_s", AuthConfig().refresh_s, lo=0, lo_open=True)
    r.finish()
    return AuthConfig(keys=tuple(keys), enabled=r.given, refresh_s=refresh_s)


def _entry(
    r: Reader,
    i: int,
    item: object,
    targets: Collection[str],
    regions: Collection[str] | None,
) -> KeyConfig | None:
    path = r.at(f"keys[{i}]")
    default_name = f"key-{i + 1}"
    if not isinstance(item, dict):
        found = _secret(r, path, item)
        return None if found is None else KeyConfig(default_name, found[0], found[1])
    k = Reader(r.ctx, path, item)
    raw_secret = k.raw("key")
    found = None
    if raw_secret is MISSING or raw_secret is None:
        k.problem("key", "is required (a literal, env:NAME or sha256:<hex>)")
    else:
        found = _secret(k, k.at("key"), raw_secret)
    name = default_name
    raw_name = k.raw("name")
    if raw_name is not MISSING:
        problem = name_problem(raw_name)
        if problem is not None:
            k.problem("name", problem)
        else:
            name = str(raw_name)
    digest, secret = found if found is not None else (b"", None)
    key = key_fields(k, name, digest, secret, targets, regions)
    k.finish()
    return None if found is None else key


def fold_governance(r: Reader, auth_config: AuthConfig, gov: GovernanceConfig) -> AuthConfig:
    """Move `governance.keys.<name>` (the older place) onto the key objects."""
    if not gov.keys:
        return auth_config
    by_name = {k.name: k for k in auth_config.keys}
    for name, policy in gov.keys.items():
        key = by_name.get(name)
        if key is None:
            continue  # reported by sections.governance
        if key.pii or key.data_residency is not None:
            r.problem(
                f"keys.{name}",
                "the key object in auth.keys sets pii or data_residency too: keep one place",
            )
            continue
        by_name[name] = replace(key, pii=dict(policy.pii), data_residency=policy.data_residency)
    return replace(auth_config, keys=tuple(by_name[k.name] for k in auth_config.keys))


def runtime_key(
    r: Reader, name: str, digest: bytes, targets: Collection[str], regions: Collection[str] | None
) -> KeyConfig:
    """A key made through POST /admin/keys (the body minus `name`), validated like a config key."""
    key = key_fields(r, name, digest, None, targets, regions)
    r.finish()
    return replace(key, runtime=True)


def describe(key: KeyConfig) -> dict[str, Any]:
    """The admin API's view of a key: everything but the secret and its digest."""
    budget: dict[str, float] = {}
    if key.budget_daily_usd is not None:
        budget["daily"] = key.budget_daily_usd
    if key.budget_monthly_usd is not None:
        budget["monthly"] = key.budget_monthly_usd
    return {
        "id": key.name,
        "source": "runtime" if key.runtime else "config",
        "routes": list(key.routes) if key.routes is not None else None,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_usd": budget or None,
        "pii": key.pii or None,
        "data_residency": list(key.data_residency) if key.data_residency is not None else None,
        "allow_direct_deployments": key.allow_direct_deployments,
        "metadata": key.metadata,
        "created_at": key.created_at,
    }
