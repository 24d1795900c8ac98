"""OpenTelemetry traces, built from each request's record when it closes.

`context` (W3C trace context: the client's `traceparent`, the ids the gateway gives the
request and its attempts, the headers sent upstream) and `spans` (a record as span
descriptions) import no OpenTelemetry; only `export` does, and the runtime imports it
only when `telemetry.traces.enabled` is set, so the gateway runs without the extra.
"""
