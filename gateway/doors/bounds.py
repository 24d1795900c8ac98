"""Size and nesting bounds every door holds a client body to before any adapter sees it:
an empty, non-JSON, non-object or too deeply nested body, and a missing or overlong
`model`, are 400s naming the field. JSON depth is checked iteratively, never by recursion.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config.model import LimitsConfig
from gateway.rejection import Rejected

# Per message: the characters of its text (string content or text parts) plus its tool-call
# arguments. Used unless LimitsConfig grows a `max_message_chars` field.
MAX_MESSAGE_CHARS = 1_000_000
MAX_MODEL_CHARS = 256  # a route or deployment name; echoed in errors and logs
# orjson.dumps refuses more than 254 levels, and the adapters re-serialize the client's
# values (and tool arguments they parse) a few levels deeper at most than they were sent:
# a configured max_json_depth above this is clamped, so a body that passes can be sent on.
SAFE_JSON_DEPTH = 200
_CONTAINERS = (dict, list)


def depth_limit(limits: LimitsConfig) -> int:
    return max(1, min(limits.max_json_depth, SAFE_JSON_DEPTH))


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests containers deeper than `limit` (a scalar is depth 0, `[]` 1).

    Iterative, one level at a time (no recursion, so no input can exhaust the Python
    stack); the per-level list comprehension keeps a 4 MB body of tiny containers to a
    cost similar to parsing it.
    """
    if value.__class__ not in _CONTAINERS:
        return False
    level: list[Any] = [value]
    depth = 1
    while depth <= limit:
        below: list[Any] = []
        extend = below.extend
        for node in level:
            children = node.values() if node.__class__ is dict else node
            extend([child for child in children if child.__class__ in _CONTAINERS])
        if not below:
            return False
        depth += 1
        level = below
    return True


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
