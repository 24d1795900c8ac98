"""Secrets never leave: every configured secret (provider keys and auth headers, gateway
keys, the admin key, Redis credentials) is cut out of whatever an upstream says before it
reaches a client, a log line or a record.

Upstream error bodies are untrusted input: some upstreams echo the key they were sent (in
auth errors), in any field. The message keeps its meaning with the secret replaced; the
short machine fields (`type`, `code`, `param`) are kept only when they look like what
they claim to be and hold no secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from urllib.parse import unquote, urlsplit

from gateway.config.model import Config
from gateway.streaming.events import UpstreamError

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter values are not secrets worth the false positives
MAX_MESSAGE_CHARS = 1000
_MACHINE_FIELD = re.compile(r"^[A-Za-z0-9_.:\-\[\]]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def config_secrets(config: Config) -> list[str]:
    """Every secret value the config holds."""
    found: list[str] = []
    for provider in config.providers.values():
        if provider.api_key is not None:
            found.append(provider.api_key.reveal())
        for name, value in provider.headers.items():
            if name.lower() in ("authorization", "x-api-key", "api-key", "x-goog-api-key"):
                found.append(value.split(" ", 1)[-1])  # "Bearer <secret>" -> the secret too
                found.append(value)
    found.extend(key.reveal() for key in config.auth.secrets)  # sha256: keys hold none
    if config.admin.key is not None:
        found.append(config.admin.key.reveal())
    traces = config.telemetry.traces
    for header in traces.headers.values():  # the OTLP collector's token
        found.append(header.reveal().split(" ", 1)[-1])
        found.append(header.reveal())
    collector = urlsplit(traces.endpoint)
    if collector.password:
        found.append(unquote(collector.password))
    if config.state.backend == "redis":
        parts = urlsplit(config.state.url)
        if parts.password:
            found.append(unquote(parts.password))
    return found


class Scrubber:
    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        return value

    def holds_secret(self, value: str) -> bool:
        return self._pattern is not None and self._pattern.search(value) is not None

    def _field(self, value: str | None) -> str | None:
        if value is None or not _MACHINE_FIELD.match(value) or self.holds_secret(value):
            return None
        return value

    def error(self, error: UpstreamError) -> UpstreamError:
        """The error as a client may see it."""
        message = _CONTROL.sub(" ", self.text(error.message))[:MAX_MESSAGE_CHARS]
        type_ = self._field(error.type) or (
            "server_error" if error.status >= 500 or error.status == 0 else "upstream_error"
        )
        code, param = self._field(error.code), self._field(error.param)
        if (message, type_, code, param) == (error.message, error.type, error.code, error.param):
            return error
        return replace(
            error, message=message or "upstream error", type=type_, code=code, param=param
        )
