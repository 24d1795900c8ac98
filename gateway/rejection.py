"""The domain's refusal of a request: raised by parsers, admission, governance and planning,
rendered once per front door by `server/` (OpenAI envelope, Anthropic error shape, ...).

`status` is the HTTP status the refusal maps to; every front door speaks HTTP, and the
protocols we serve agree on the statuses (400, 401, 403, 404, 413, 415, 429, 503).
"""

from __future__ import annotations


class Rejected(Exception):
    """A client-visible refusal: status, OpenAI-style type, message, code and param."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}
