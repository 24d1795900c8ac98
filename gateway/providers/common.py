"""Small helpers every adapter shares for reading untrusted upstream data. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers.base import ProviderSettings

# The longest wait an upstream may ask for (retry-after, Gemini RetryInfo): one day.
MAX_RETRY_AFTER_S = 86400.0


def clamp_delay(seconds: Any) -> float | None:
    """A retry delay in seconds, capped at MAX_RETRY_AFTER_S; None unless a finite number >= 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    try:
        value = float(seconds)
    except OverflowError:  # an int too large for a float
        return MAX_RETRY_AFTER_S if seconds > 0 else None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, MAX_RETRY_AFTER_S)


def json_text(value: Any) -> str | None:
    """`value` (parsed upstream JSON) serialized again; None when it cannot be: orjson writes
    at most 254 levels of nesting but reads up to 1024, and rejects integers past 64 bits."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return None


def clean_message(message: str, secret: str | None, limit: int = 2000) -> str:
    """An upstream error message fit to show: `secret` (the API key, which some upstreams
    echo) replaced by "***", then cut to `limit` characters (so no key prefix survives)."""
    if secret and len(secret) >= 8 and secret in message:
        message = message.replace(secret, "***")
    return message[:limit]


def checked_headers(settings: ProviderSettings, known: frozenset[str]) -> dict[str, str]:
    """Validate the provider's options; return its extra `headers` (lower-case names)."""
    where = f"provider {settings.name!r} (kind {settings.kind!r})"
    for name in settings.options:
        if name not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{where}: unknown option {name!r} (known options: {names})")
    extra = settings.options.get("headers") or {}
    if not isinstance(extra, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise ValueError(f"{where}: option 'headers' must map header names to strings")
    return {name.lower(): value for name, value in extra.items()}
