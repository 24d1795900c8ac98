"""Size and nesting bounds a door holds a client body to before any adapter sees it: the
chat parser's rules (doors/chat_parse.py, whose depth check and limits these reuse) for a
door whose body is not chat-shaped."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config.model import LimitsConfig
from gateway.doors.chat_parse import (
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
    depth_limit,
    json_depth_exceeds,
)
from gateway.rejection import Rejected

__all__ = [
    "MAX_MESSAGE_CHARS",
    "bad",
    "depth_limit",
    "embedded_too_deep",
    "load_body",
    "model_name",
]


def bad(message: str, param: str, code: str | None = None) -> Rejected:
    return Rejected(400, message, "invalid_request_error", code, param)


def load_body(raw: bytes, limits: LimitsConfig) -> dict[str, Any]:
    """The JSON object of a request body, its nesting bounded; a 400 naming `body` or the
    top-level field that is too deep otherwise."""
    if not raw.strip():
        raise bad("request body is empty; expected a JSON object", "body", "invalid_json")
    depth = depth_limit(limits)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise bad(
                f"request body is nested deeper than the limit of {depth} JSON levels",
                "body",
                "json_too_deep",
            ) from None
        raise bad(f"request body is not valid JSON: {exc}", "body", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad("request body must be a JSON object", "body", "invalid_json")
    if raw.count(b"[") + raw.count(b"{") > depth:  # fewer brackets cannot nest that deep
        for key, value in body.items():
            if json_depth_exceeds(value, depth - 1):
                raise bad(
                    f"'{key}' is nested deeper than the limit of {depth} JSON levels",
                    key,
                    "json_too_deep",
                )
    return body


def embedded_too_deep(text: str, limit: int) -> bool:
    """Whether JSON text inside a string (tool arguments and results, which some adapters
    parse and embed) nests deeper than `limit`."""
    if text.count("[") + text.count("{") <= limit:
        return False
    try:
        return json_depth_exceeds(orjson.loads(text), limit)
    except orjson.JSONDecodeError as exc:  # not JSON: sent on as text, unless orjson gave up
        return "depth" in str(exc) or "recursion" in str(exc)


def model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required and must be a non-empty string", "model")
    if len(model) > MAX_MODEL_CHARS:
        raise bad(f"'model' is longer than {MAX_MODEL_CHARS} characters", "model")
    return model
