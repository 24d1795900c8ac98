"""The scrubber: secrets masked in messages; machine fields kept only when clean."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.scrub import Scrubber, config_secrets
from gateway.streaming.events import UpstreamError


def test_config_secrets_cover_every_kind_of_secret() -> None:
    config = parse_config(
        {
            "auth": {"keys": ["gateway-key-1"]},
            "admin": {"key": "admin-key-1"},
            "state": {"backend": "redis", "url": "redis://user:redis%2Fpass@h:6379/0"},
            "providers": {
                "p": {
                    "kind": "openai",
                    "base_url": "http://x/v1",
                    "api_key": "provider-key-1",
                    "headers": {"Authorization": "Bearer header-secret-1"},
                }
            },
        },
        env={},
    )
    found = set(config_secrets(config))
    assert {"gateway-key-1", "admin-key-1", "redis/pass", "provider-key-1"} <= found
    assert "header-secret-1" in found


def test_error_fields_are_scrubbed_or_dropped() -> None:
    scrub = Scrubber(["sk-secret-123", "tiny"])
    error = UpstreamError(
        401,
        "sk-secret-123",
        "bad key sk-secret-123\x00 here",
        False,
        code="sk-secret-123",
        param="messages[0].content",
    )
    out = scrub.error(error)
    assert out.message == "bad key ***  here"
    assert out.type == "upstream_error" and out.code is None
    assert out.param == "messages[0].content"  # clean machine fields stay
    assert scrub.text("tiny stays") == "tiny stays"  # too short to be treated as a secret
    clean = UpstreamError(429, "rate_limit_exceeded", "slow down", True, code="rate_limit")
    assert scrub.error(clean) is clean


def test_a_field_that_is_not_a_machine_field_is_dropped() -> None:
    out = Scrubber([]).error(UpstreamError(500, "x" * 300, "m", True, code="has spaces"))
    assert out.type == "server_error" and out.code is None
