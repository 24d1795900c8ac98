"""Client bodies -> parse_chat_request -> every adapter's build_request.

Contract: a body is either rejected with a 400 ApiError that names a param, or every
adapter turns the parsed request into an upstream request (or refuses it with
UnsupportedParams, which the gateway reports as a 400); no other exception, since
anything else escapes Gateway.prepare() and becomes a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config.model import LimitsConfig
from gateway.doors.chat_parse import parse_chat_request
from gateway.providers.base import TargetModel, UnsupportedParams
from gateway.server.errors import ApiError
from tests.fuzz.invariants import API_KEY, KINDS, provider
from tests.fuzz.strategies import dumps, json_values, mutated

LIMITS = LimitsConfig(max_json_depth=16, max_messages=16)
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
TOOL = {
    "type": "function",
    "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
}
CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"t": 1}'},
        {"role": "developer", "content": "x", "name": "n"},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 10,
    "stop": ["x"],
    "seed": 1,
    "tools": [TOOL],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    "reasoning_effort": "low",
    "user": "u",
    "top_k": 3,
}
bodies = st.one_of(
    st.sampled_from([12, 50, 300]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    st.sampled_from([12, 50, 300]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    st.sampled_from([12, 50, 300]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=100),
)


def build_everywhere(raw: bytes) -> None:
    try:
        chat = parse_chat_request(raw, LIMITS)
    except ApiError as error:
        assert error.status == 400 and error.param and isinstance(error.message, str)
        event(f"rejected: {error.param.split('[')[0]}")
        return
    event("accepted")
    for kind in KINDS:
        for drop in (False, True):
            target = TargetModel("upstream-model", drop_params=drop)
            try:
                upstream = provider(kind).build_request(chat, target)
            except UnsupportedParams as exc:
                assert exc.params
                assert not drop or kind in ("anthropic", "gemini", "ollama")  # undroppable
                continue
            orjson.loads(upstream.body)
            if API_KEY.encode() not in raw:  # the key travels in headers only
                assert API_KEY.encode() not in upstream.body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies)
def test_parsed_requests_build_for_every_adapter(raw: bytes) -> None:
    build_everywhere(raw)


@pytest.mark.parametrize("arguments", ["[" * 300 + "]" * 300, '{"a":' * 300 + "1" + "}" * 300])
def test_deep_tool_arguments_are_stopped_before_the_adapters(arguments: str) -> None:
    """Anthropic, Gemini and Ollama parse tool arguments and re-serialize them: orjson
    cannot write more than 254 levels, so parse.py must reject these first."""
    call = {**CALL, "function": {"name": "f", "arguments": arguments}}
    body = {**CHAT, "messages": [{"role": "assistant", "tool_calls": [call]}]}
    with pytest.raises(ApiError) as info:
        parse_chat_request(dumps(body), LimitsConfig())
    assert info.value.code == "json_too_deep"
