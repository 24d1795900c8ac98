"""Small helpers every adapter shares for reading untrusted upstream data. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import email.utils
import math
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers.base import ProviderSettings
from gateway.request import ChatRequest
from gateway.streaming.events import UpstreamError

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


MAX_MESSAGE_CHARS = 2000  # upstream error messages are cut to this length


def is_retryable(status: int) -> bool:
    """Another attempt (elsewhere or later) may succeed: timeouts, conflicts, limits, 5xx."""
    return status in (408, 409, 429) or status >= 500


def opens_circuit(status: int) -> bool:
    """The failure says something about the deployment (auth, quota, overload, a model that
    is not there, a wrong base URL), not about the request."""
    return status in (401, 402, 403, 404, 408, 429) or status >= 500 or status < 400


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds), or `retry-after` as an
    HTTP date measured against the response's `date` header (adapters never read the clock).
    `headers` must have lower-case names. Capped at a day (MAX_RETRY_AFTER_S)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return clamp_delay(seconds)
    try:
        until = email.utils.parsedate_to_datetime(headers["retry-after"])
        now = email.utils.parsedate_to_datetime(headers["date"])
        return clamp_delay(max(0.0, (until - now).total_seconds()))
    except (KeyError, TypeError, ValueError, OverflowError):  # absent, unparsable, naive/aware
        return None


def reported_count(value: Any) -> int | None:
    """A token count the provider reported (a non-negative integer), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def protocol_error(message: str, retryable: bool = True) -> UpstreamError:
    """The upstream broke its own protocol (bad JSON, impossible shapes, cut frames)."""
    return UpstreamError(502, "upstream_protocol_error", message, retryable)


def json_object(body: bytes) -> dict[str, Any] | UpstreamError:
    """A whole response body as a JSON object, or the protocol error saying why not."""
    try:
        data = orjson.loads(body)  # leading blank lines (DeepSeek) are JSON whitespace
    except orjson.JSONDecodeError:
        return protocol_error("upstream response is not valid JSON")
    if not isinstance(data, dict):
        return protocol_error("upstream response is not a JSON object")
    return data


def with_prefix(request: ChatRequest, text: str, **fields: Any) -> ChatRequest:
    """`request` whose messages end with an assistant message holding `text` (plus
    `fields`, e.g. `prefix=True`): what a continuation asks the model to go on from. A
    trailing assistant text message the client sent (its own prefill) is extended, since
    the answer the client saw came after it."""
    messages = list(request.messages)
    last = messages[-1] if messages else None
    if (
        isinstance(last, dict)
        and last.get("role") == "assistant"
        and isinstance(last.get("content"), str)
        and not last.get("tool_calls")
    ):
        messages[-1] = {**last, "content": last["content"] + text, **fields}
    else:
        messages.append({"role": "assistant", "content": text, **fields})
    return dataclasses.replace(request, messages=messages)
