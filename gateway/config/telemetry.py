"""The `telemetry:` section: OpenTelemetry traces exported over OTLP/HTTP.

```yaml
telemetry:
  traces:
    enabled: true
    endpoint: http://127.0.0.1:4318/v1/traces
    service_name: race-gateway
    sample_ratio: 1.0
    include_content: false
    headers: {authorization: env:OTLP_TOKEN}
```

Header values are secrets (`env:NAME` or a literal): they are scrubbed from everything the
gateway says, like provider keys. The endpoint is never echoed (it may hold credentials).
"""

from __future__ import annotations

import importlib.util
import string
from urllib.parse import urlsplit

from gateway.config.model import Secret, TelemetryConfig, TracesConfig
from gateway.config.validate import Reader

# A header name as RFC 9110 has it (a token); values may not break the header line.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def telemetry(r: Reader) -> TelemetryConfig:
    out = TelemetryConfig(traces=traces(r.section("traces")))
    r.finish()
    return out


# What `pip install race-gateway[otel]` brings; looked for only when traces are enabled.
OTEL_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http")
OTEL_HINT = "needs the otel extra: pip install 'race-gateway[otel]'"


def otel_installed() -> bool:
    for name in OTEL_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # a parent package is missing or blocked
            return False
    return True


def traces(r: Reader) -> TracesConfig:
    d = TracesConfig()
    enabled = r.boolean("enabled", d.enabled)
    if enabled and not otel_installed():
        r.problem("enabled", OTEL_HINT)
    out = TracesConfig(
        enabled=enabled,
        endpoint=_endpoint(r, d.endpoint),
        service_name=r.string("service_name", d.service_name),
        sample_ratio=r.number("sample_ratio", d.sample_ratio, lo=0.0, hi=1.0),
        parent_based=r.boolean("parent_based", d.parent_based),
        include_content=r.boolean("include_content", d.include_content),
        max_content_chars=r.integer("max_content_chars", d.max_content_chars, lo=1),
        headers=_headers(r),
        timeout_s=r.number("timeout_s", d.timeout_s, lo=0, lo_open=True),
        max_queue_spans=r.integer("max_queue_spans", d.max_queue_spans, lo=1),
    )
    r.finish()
    return out


def _endpoint(r: Reader, default: str) -> str:
    url = r.string("endpoint", default)
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError when out of range
    except ValueError:
        valid = False
    if not valid:  # not echoed: a URL may carry credentials
        r.problem("endpoint", "must be an http:// or https:// URL with a host")
        return default
    return url


def _headers(r: Reader) -> dict[str, Secret]:
    out: dict[str, Secret] = {}
    for name, value in r.mapping("headers").items():
        path = f"headers.{name}"
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
            r.problem(path, "must be an HTTP header name (letters, digits, '-')")
            continue
        secret = r.ctx.resolve_secret(r.at(path), value)
        if secret is None:
            continue
        if any(c in secret.reveal() for c in "\r\n\0"):
            r.problem(path, "must not contain line breaks")
            continue
        out[name.lower()] = secret
    return out
