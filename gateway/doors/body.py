"""A front door's request body -> one JSON object, within the limits every door shares.

Empty bodies, invalid JSON, non-objects and nesting past `max_json_depth` are refused
with a 400 naming the body or the top-level field that is too deep. The depth is checked
level by level (no recursion, so no input can exhaust the Python stack), and only when the
body holds enough brackets to nest that deep.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.doors.chat_parse import SAFE_JSON_DEPTH
from gateway.doors.chat_parse import json_depth_exceeds as nests_deeper
from gateway.rejection import Rejected

__all__ = ["bad", "depth_limit", "load_object", "nests_deeper"]


def bad(message: str, param: str | None, code: str | None = None) -> Rejected:
    return Rejected(400, message, "invalid_request_error", code, param)


def depth_limit(configured: int) -> int:
    return max(1, min(configured, SAFE_JSON_DEPTH))


def load_object(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a dict, or Rejected(400)."""
    if not raw.strip():
        raise bad("request body is empty; expected a JSON object", "body", "invalid_json")
    depth = depth_limit(max_depth)
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
            if nests_deeper(value, depth - 1):
                raise bad(
                    f"'{key}' is nested deeper than the limit of {depth} JSON levels",
                    key,
                    "json_too_deep",
                )
    return body
