"""Traces are an optional extra: with `telemetry.traces` off the gateway loads none of the
exporting code and tells upstreams nothing of the client's trace; without the extra
installed it serves as before, and enabling traces is a config error that says what to
install. (The redis client imports parts of OpenTelemetry's API on its own when present,
so "nothing" means nothing of ours: no SDK tracer, no exporter, no `telemetry.export`.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.stack import FAST, stack

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EXPORTING = ("gateway.telemetry.export", "opentelemetry.sdk.trace", "opentelemetry.exporter")


def run(script: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # the script's own lines (the access log writes to stdout too)
    return [line[4:] for line in out.stdout.splitlines() if line.startswith("OUT ")]


async def test_telemetry_off_sends_no_trace_header_upstream() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": FAST}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["m"]}}
    async with stack(servers, routes) as s:
        assert s.gateway.trace_sink is None and s.gateway.tracing is None
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            headers = {"traceparent": TRACEPARENT, "tracestate": "a=b"}
            async with http.post(f"{s.url}/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200
        (record,) = s.log.records
        assert record.traceparent is None and record.tracestate is None


SERVE_ONE_REQUEST = f"""
import asyncio, sys
BLOCK
import aiohttp
from gateway.config import ConfigError, parse_config
from tests.stack import FAST, stack

async def main():
    servers = {{"a": {{"kind": "openai", "models": {{"m": FAST}}}}}}
    routes = {{"chat": {{"strategy": "fallback", "deployments": ["m"]}}}}
    async with stack(servers, routes) as s:
        body = {{"model": "chat", "messages": [{{"role": "user", "content": "hi"}}]}}
        headers = {{"traceparent": "{TRACEPARENT}"}}
        async with aiohttp.ClientSession() as http:
            async with http.post(s.url + "/v1/chat/completions", json=body, headers=headers) as r:
                print("OUT", r.status)
        print("OUT", s.log.records[0].traceparent)
    print("OUT", sorted(m for m in sys.modules if m.startswith({EXPORTING!r})))
    try:
        parse_config({{"telemetry": {{"traces": {{"enabled": True}}}}}}, env={{}})
        print("OUT", "accepted")
    except ConfigError as exc:
        print("OUT", exc.problems)

asyncio.run(main())
"""


def test_telemetry_off_loads_no_exporting_code() -> None:
    status, upstream_header, exporting, enabling = run(SERVE_ONE_REQUEST.replace("BLOCK", ""))
    assert (status, upstream_header, exporting) == ("200", "None", "[]")
    assert enabling == "accepted"  # the extra is installed here


def test_without_the_extra_the_gateway_serves_and_enabling_traces_says_what_to_install() -> None:
    block = "sys.modules['opentelemetry'] = None  # as if the otel extra were not installed"
    status, upstream_header, exporting, enabling = run(SERVE_ONE_REQUEST.replace("BLOCK", block))
    assert (status, upstream_header, exporting) == ("200", "None", "[]")
    assert enabling == str(
        ["telemetry.traces.enabled: needs the otel extra: pip install 'race-gateway[otel]'"]
    )
