"""Moved to `gateway/doors/chat_parse.py` (the chat door's parser is transport-free).

Kept only so that `server/handlers.py` imports keep working until its refactor lands;
import from `gateway.doors.chat_parse`, and delete this module once nothing uses it.
"""

from gateway.doors.chat_parse import (
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
    ROLES,
    SAFE_JSON_DEPTH,
    depth_limit,
    json_depth_exceeds,
    parse_chat_request,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_MODEL_CHARS",
    "ROLES",
    "SAFE_JSON_DEPTH",
    "depth_limit",
    "json_depth_exceeds",
    "parse_chat_request",
]
