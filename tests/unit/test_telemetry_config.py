"""The `telemetry:` section: defaults, values, path-precise problems, secrets kept secret."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ConfigError, parse_config
from gateway.config.model import TracesConfig
from gateway.config.summary import summarize
from gateway.scrub import Scrubber, config_secrets

TOKEN = "otlp-token-0123456789"


def problems(traces: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"telemetry": {"traces": traces}}, env=env or {})
    return info.value.problems


def test_traces_are_off_by_default() -> None:
    assert parse_config({}, env={}).telemetry.traces == TracesConfig()
    assert TracesConfig().enabled is False and TracesConfig().include_content is False


def test_every_key_parses() -> None:
    traces = {
        "enabled": True,
        "endpoint": "https://otel.example.com:4318/v1/traces",
        "service_name": "gw-eu",
        "sample_ratio": 0.25,
        "parent_based": False,
        "include_content": True,
        "max_content_chars": 100,
        "headers": {"Authorization": "env:OTLP", "x-team": "blue-team"},
        "timeout_s": 2.5,
        "max_queue_spans": 64,
    }
    config = parse_config({"telemetry": {"traces": traces}}, env={"OTLP": f"Bearer {TOKEN}"})
    out = config.telemetry.traces
    assert out.enabled and out.endpoint == traces["endpoint"] and out.service_name == "gw-eu"
    assert (out.sample_ratio, out.parent_based, out.include_content) == (0.25, False, True)
    assert (out.max_content_chars, out.timeout_s, out.max_queue_spans) == (100, 2.5, 64)
    assert {k: v.reveal() for k, v in out.headers.items()} == {
        "authorization": f"Bearer {TOKEN}",
        "x-team": "blue-team",
    }
    assert TOKEN not in repr(out)


def test_problems_name_their_path() -> None:
    found = problems(
        {
            "enabled": "yes",
            "endpoint": "ftp://user:pw-in-url@host/v1/traces",
            "sample_ratio": 1.5,
            "max_content_chars": 0,
            "timeout_s": 0,
            "headers": {"bad header": "x", "x-token": "env:MISSING_OTLP_TOKEN"},
            "sampel_ratio": 1,
        }
    )
    assert found == [
        "telemetry.traces.enabled: must be true or false, got 'yes'",
        "telemetry.traces.endpoint: must be an http:// or https:// URL with a host",
        "telemetry.traces.sample_ratio: must be a number in [0, 1], got 1.5",
        "telemetry.traces.max_content_chars: must be an integer >= 1, got 0",
        "telemetry.traces.headers.bad header: must be an HTTP header name (letters, digits, '-')",
        "telemetry.traces.headers.x-token: environment variable MISSING_OTLP_TOKEN is not set",
        "telemetry.traces.timeout_s: must be a number > 0, got 0",
        "telemetry.traces.sampel_ratio: unknown key (did you mean 'sample_ratio'?)",
    ]
    assert not any("pw-in-url" in p for p in found)


def test_unknown_telemetry_section_and_header_line_breaks() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"telemetry": {"metrics": {}}}, env={})
    assert info.value.problems == ["telemetry.metrics: unknown key (did you mean 'traces'?)"]
    assert problems({"headers": {"x-a": "one\r\nx-b: two"}}) == [
        "telemetry.traces.headers.x-a: must not contain line breaks"
    ]


def test_collector_token_is_a_secret_the_scrubber_cuts() -> None:
    traces = {"headers": {"authorization": f"Bearer {TOKEN}"}}
    config = parse_config({"telemetry": {"traces": traces}}, env={})
    scrub = Scrubber(config_secrets(config))
    assert scrub.text(f"echo {TOKEN} and Bearer {TOKEN}") == "echo *** and ***"
    endpoint = "https://user:pass%2Fword-123@otel.example.com/v1/traces"
    config = parse_config({"telemetry": {"traces": {"endpoint": endpoint}}}, env={})
    assert Scrubber(config_secrets(config)).text("a pass/word-123 b") == "a *** b"


def test_check_config_summary_names_the_collector_host_only() -> None:
    endpoint = "https://user:pw-in-url@otel.example.com/v1/traces"
    traces = {"enabled": True, "endpoint": endpoint, "sample_ratio": 0.1}
    summary = summarize(parse_config({"telemetry": {"traces": traces}}, env={}))
    assert "  traces: OTLP/HTTP to otel.example.com, sample_ratio=0.1" in summary.splitlines()
    assert "pw-in-url" not in summary
    assert "traces" not in summarize(parse_config({}, env={}))
