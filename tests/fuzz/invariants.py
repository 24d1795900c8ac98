"""What every adapter output must satisfy, strategies for upstream-like bytes, and the ledger
of known violations (each has a deterministic strict-xfail test in test_known_bugs.py).

A fuzz test does not fail on a violation listed in KNOWN for its (kind, surface): the
violation is reported as a hypothesis `event` instead, so the fuzzers keep hunting for
new problems while a known one waits for its fix. When a fix lands, the matching strict
xfail test starts passing (XPASS is an error): delete that test's marker and the entry here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any, get_args

from hypothesis import event

from gateway.providers import registry
from gateway.providers.base import Provider, ProviderSettings
from gateway.streaming.events import (
    Finish,
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

API_KEY = "sk-fuzz-SECRET-4f9c2a7e51"
OPENAI_FAMILY = ("openai", "deepseek", "mistral", "vllm", "ollama_openai")
KINDS = (*OPENAI_FAMILY, "anthropic", "gemini", "ollama")
EVENT_TYPES = (
    TextDelta,
    ReasoningDelta,
    ReasoningSignature,
    ToolCallDelta,
    Finish,
    Usage,
    ResponseMeta,
    UpstreamError,
)
FINISH_REASONS = frozenset(get_args(FinishReason))
MAX_ERROR_MESSAGE = 2000  # every adapter cuts upstream error messages to this

# (kind, surface) -> violations that are known bugs in code this suite does not own.
# Surfaces: "stream" (decoder feed/close), "response" (parse_response), "error" (parse_error).
# Empty: every adapter bug found so far is fixed (test_known_bugs.py keeps a regression case).
_RECURSION = "raises:recursion"  # orjson.dumps of upstream JSON nested > 254 levels
_NOT_ITERABLE = "raises:not-iterable"  # `x.get(...) or ()` iterated when x is a number
KNOWN: dict[tuple[str, str], frozenset[str]] = {}


def provider(kind: str, api_key: str | None = API_KEY) -> Provider:
    return registry.create(ProviderSettings("fuzz", kind, "http://127.0.0.1:9", api_key))


def classify(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TypeError) and "Recursion limit reached" in text:
        return _RECURSION
    if isinstance(exc, TypeError) and text.endswith("object is not iterable"):
        return _NOT_ITERABLE
    return f"raises:{type(exc).__name__}: {text[:200]}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def event_violations(events: Any, key: str | None = API_KEY) -> set[str]:
    """Violations of the event contract by one adapter output (a list of events)."""
    if not isinstance(events, list):
        return {f"not-a-list: {type(events).__name__}"}
    found: set[str] = set()
    for ev in events:
        kind = type(ev)
        if kind not in EVENT_TYPES:
            found.add(f"undefined-event: {kind.__name__}")
        elif kind is TextDelta or kind is ReasoningDelta:
            if not isinstance(ev.text, str):
                found.add("field-type")
        elif kind is ToolCallDelta:
            ok = _is_int(ev.index) and ev.index >= 0 and isinstance(ev.arguments, str)
            if not (ok and _opt_str(ev.id) and _opt_str(ev.name)):
                found.add("field-type")
        elif kind is Finish:
            if ev.reason not in FINISH_REASONS:
                found.add(f"finish-reason: {ev.reason!r}")
        elif kind is Usage:
            if not all(_is_int(v) for v in (ev.prompt, ev.completion, ev.cached, ev.reasoning)):
                found.add("field-type")
        elif kind is ResponseMeta:
            if not (_opt_str(ev.model) and _opt_str(ev.fingerprint)):
                found.add("field-type")
        elif kind is ReasoningSignature:
            if not isinstance(ev.signature, str):
                found.add("field-type")
        else:
            found |= error_violations(ev, key)
    return found


def error_violations(error: Any, key: str | None = API_KEY) -> set[str]:
    if type(error) is not UpstreamError:
        return {f"not-an-UpstreamError: {type(error).__name__}"}
    found: set[str] = set()
    if not (
        _is_int(error.status)
        and isinstance(error.type, str)
        and isinstance(error.message, str)
        and isinstance(error.retryable, bool)
        and isinstance(error.opens_circuit, bool)
        and _opt_str(error.code)
        and _opt_str(error.param)
    ):
        found.add("error-field-type")
        return found
    delay = error.retry_after_s
    if delay is not None and not (
        isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0
    ):
        found.add("retry-after")  # errors.upstream_error_response does math.ceil() on it
    if key and key in error.message:
        found.add("key-leak")
    if len(error.message) > MAX_ERROR_MESSAGE + 50:
        found.add("long-message")
    return found


def run_and_check(kind: str, surface: str, call: Callable[[], Any]) -> None:
    """Run one adapter call; fail on any violation that is not a known bug of (kind, surface)."""
    try:
        result = call()
    except Exception as exc:
        found = {classify(exc)}
    else:
        found = error_violations(result) if surface == "error" else event_violations(result)
    known = KNOWN.get((kind, surface), frozenset())
    for violation in sorted(found & known):
        event(f"known bug: {kind} {surface} {violation}")
    unknown = found - known
    assert not unknown, f"{kind} {surface}: {sorted(unknown)}"


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]
