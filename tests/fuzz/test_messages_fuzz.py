"""Anthropic bodies -> parse_messages_request -> every adapter's build_request.

The Messages door's version of test_request_fuzz: a body is either refused with a 400 that
names a param, or every adapter builds an upstream request from it (or refuses it with
UnsupportedParams, a 400 at the gateway); anything else would be a 500. Fields only an
Anthropic upstream takes never reach another kind.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config.model import LimitsConfig
from gateway.doors.messages_parse import parse_messages_request
from gateway.providers.base import TargetModel, UnsupportedParams
from gateway.rejection import Rejected
from tests.fuzz.invariants import KINDS, provider
from tests.fuzz.strategies import dumps, json_values, mutated

LIMITS = LimitsConfig(max_json_depth=16, max_messages=16)
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "b1"}
CACHE = {"type": "ephemeral"}
MESSAGES: dict[str, Any] = {
    "model": "m",
    "max_tokens": 3000,
    "system": [{"type": "text", "text": "be brief", "cache_control": CACHE}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_control": CACHE},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "r"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": [1, {"b": 2}]}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c1",
                    "content": [{"type": "text", "text": '{"t": 1}'}],
                    "is_error": True,
                    "cache_control": CACHE,
                },
                {"type": "text", "text": "go on"},
            ],
        },
    ],
    "stream": True,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 3,
    "stop_sequences": ["x"],
    "metadata": {"user_id": "u"},
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "output_config": {"effort": "high"},
    "cache_control": CACHE,
}
bodies = st.one_of(
    st.sampled_from([30, 300, 3000]).flatmap(lambda rate: mutated(MESSAGES, rate)).map(dumps),
    st.sampled_from([30, 300, 3000]).flatmap(lambda rate: mutated(MESSAGES, rate)).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=100),
    st.just(dumps(MESSAGES)),
)
ANTHROPIC_ONLY = (b"cache_control", b"top_k", b"signature", b"redacted_thinking", b"is_error")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies)
def test_parsed_messages_build_for_every_adapter(raw: bytes) -> None:
    try:
        chat = parse_messages_request(raw, HEADERS, LIMITS)
    except Rejected as error:
        assert error.status == 400 and error.param and isinstance(error.message, str)
        event(f"rejected: {error.param.split('[')[0].split('.')[0]}")
        return
    event("accepted")
    for kind in KINDS:
        for drop in (False, True):
            try:
                upstream = provider(kind).build_request(chat, TargetModel("up", drop_params=drop))
            except UnsupportedParams as exc:
                assert exc.params
                continue
            orjson.loads(upstream.body)
            if kind != "anthropic":
                assert not any(name in upstream.body for name in ANTHROPIC_ONLY), kind
                assert "anthropic-beta" not in upstream.headers
