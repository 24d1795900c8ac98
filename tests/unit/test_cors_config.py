"""The `cors:` config section and the origin / header rules built from it (no sockets)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from gateway.check_config import check_config_main
from gateway.config import ConfigError, CorsConfig, parse_config
from gateway.demo import banner, demo_config
from gateway.server.cors import HeaderPolicy, OriginPolicy


def cors_of(section: Any, **extra: Any) -> CorsConfig:
    return parse_config({"cors": section, **extra}, env={}).cors


def problems_of(section: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"cors": section}, env={})
    return info.value.problems


def test_off_by_default() -> None:
    assert not parse_config({}, env={}).cors.enabled
    assert not parse_config({"cors": None}, env={}).cors.enabled


def test_defaults_allow_what_the_sdks_send_and_the_gateway_reads() -> None:
    cors = cors_of(
        {"allow_origins": ["https://chat.example.com"]},
        latency={"region_header": "X-My-Region"},
        routing={"reasoning_header": "x-think"},
    )
    assert cors.enabled and cors.allow_origins == ("https://chat.example.com",)
    for name in ("authorization", "content-type", "x-api-key", "x-stainless-*", "anthropic-*"):
        assert name in cors.allow_headers
    assert {"openai-organization", "openai-project", "openai-beta"} <= set(cors.allow_headers)
    assert {"x-my-region", "x-think"} <= set(cors.allow_headers)
    assert {"x-request-id", "x-gateway-deployment", "retry-after"} <= set(cors.expose_headers)
    assert "x-ratelimit-remaining-requests" in cors.expose_headers
    assert cors.max_age_s == 600


def test_explicit_values_are_normalized() -> None:
    cors = cors_of(
        {
            "allow_origins": ["HTTP://LocalHost:*", "https://[::1]:8443"],
            "allow_headers": ["Authorization", "X-Custom-*", "authorization"],
            "expose_headers": "*",
            "max_age_s": 0,
        }
    )
    assert cors.allow_origins == ("http://localhost:*", "https://[::1]:8443")
    assert cors.allow_headers == ("authorization", "x-custom-*")
    assert cors.expose_headers == ("*",)
    assert cors.max_age_s == 0
    assert cors_of({"allow_origins": "*"}).allow_origins == ("*",)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({}, "cors.allow_origins: is required"),
        ({"allow_origins": []}, "cors.allow_origins: must be a non-empty list"),
        ({"allow_origins": "https://a.example"}, "cors.allow_origins: must be a non-empty list"),
        ({"allow_origins": ["https://a.example/"]}, "cors.allow_origins[0]: an origin has no path"),
        (
            {"allow_origins": ["https://a.example", "a.example"]},
            "cors.allow_origins[1]: must be an origin like",
        ),
        ({"allow_origins": ["http://localhost:99999"]}, "cors.allow_origins[0]: port must be"),
        ({"allow_origins": ["http://*.example.com"]}, "cors.allow_origins[0]: must be an origin"),
        ({"allow_origins": [7]}, "cors.allow_origins[0]: must be an origin (a string)"),
        ({"allow_origins": ["*", "https://a.example"]}, "cors.allow_origins[0]: '*' allows"),
        (
            {"allow_origins": ["https://a.example", "https://A.example"]},
            "cors.allow_origins[1]: duplicate of allow_origins[0]",
        ),
        ({"allow_origins": "*", "allow_headers": ["bad header"]}, "cors.allow_headers[0]: must"),
        ({"allow_origins": "*", "allow_headers": "authorization"}, "cors.allow_headers: must"),
        ({"allow_origins": "*", "expose_headers": ["x-rate-*"]}, "cors.expose_headers[0]: a"),
        ({"allow_origins": "*", "max_age_s": -1}, "cors.max_age_s: must be an integer 0..86400"),
        ({"allow_origins": "*", "max_age_s": "600"}, "cors.max_age_s: must be an integer"),
        ({"allow_origins": "*", "allow_credentials": True}, "cors.allow_credentials: is not"),
        ({"allow_origins": "*", "allow_origin": "*"}, "cors.allow_origin: unknown key"),
        ("yes", "cors: must be a mapping"),
    ],
)
def test_problems_name_their_path(section: Any, problem: str) -> None:
    problems = problems_of(section)
    assert any(p.startswith(problem) for p in problems), problems


def test_check_config_reports_and_summarizes_cors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cors:\n  allow_origins: ['http://localhost:3000/app']\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(bad), out, err) == 1
    assert "cors.allow_origins[0]: an origin has no path: write 'http://localhost:3000'" in (
        err.getvalue()
    )
    good = tmp_path / "good.yaml"
    good.write_text("cors:\n  allow_origins: ['http://localhost:*']\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(good), out, err) == 0, err.getvalue()
    assert "  cors: http://localhost:*" in out.getvalue()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://chat.example.com", True),
        ("HTTPS://CHAT.EXAMPLE.COM", True),
        ("https://chat.example.com:443", False),  # exact entries match exactly
        ("http://chat.example.com", False),
        ("https://evil.example.com", False),
        ("http://localhost:5173", True),
        ("http://localhost", True),  # the default port
        ("http://localhost:", False),
        ("http://localhost:5173x", False),
        ("http://localhost.evil.com", False),
        ("http://localhost.evil.com:80", False),
        ("https://localhost:5173", False),
        ("null", False),
        ("", False),
    ],
)
def test_origin_rules(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(["https://chat.example.com", "http://localhost:*"])
    assert policy.allows(origin) is allowed
    assert OriginPolicy(["*"]).allows(origin)


def test_header_rules_grant_names_one_by_one() -> None:
    policy = HeaderPolicy(["authorization", "content-type", "x-stainless-*"])
    asked = "Authorization, Content-Type,x-stainless-os , X-Stainless-Retry-Count, x-evil,,"
    assert policy.granted(asked) == (
        "authorization, content-type, x-stainless-os, x-stainless-retry-count"
    )
    assert policy.granted("") == ""
    assert HeaderPolicy(["*"]).granted("authorization, x-anything") == ("authorization, x-anything")


def test_demo_allows_local_dev_servers_and_says_so() -> None:
    from gateway.sim.server import default_demo_sim_config

    sim = default_demo_sim_config()
    config = demo_config(sim, {name: "http://127.0.0.1:1" for name in sim.servers}, 8080)
    policy = OriginPolicy(config.cors.allow_origins)
    assert policy.allows("http://localhost:5173") and policy.allows("http://127.0.0.1:3000")
    assert not policy.allows("https://evil.example")
    assert "CORS is on" in banner("http://127.0.0.1:8080")
    assert "http://localhost:*" in banner("http://127.0.0.1:8080")
