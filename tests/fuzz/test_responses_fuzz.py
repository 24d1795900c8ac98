"""Responses bodies -> parse_responses_request -> every adapter's build_request.

The same contract as the chat door's fuzz (test_request_fuzz.py): a body is refused with a
Rejected naming a param (400; 404 for an item_reference nothing resolves), or every
adapter turns the mapped chat request into an upstream request (or refuses it with
UnsupportedParams); no other exception, since anything else would be a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config.model import LimitsConfig
from gateway.doors.responses_parse import parse_responses_request
from gateway.providers.base import TargetModel, UnsupportedParams
from gateway.rejection import Rejected
from tests.fuzz.invariants import KINDS, provider
from tests.fuzz.strategies import dumps, json_values, mutated

LIMITS = LimitsConfig(max_json_depth=16, max_messages=16)
STORED = {
    "msg_s_0": {
        "id": "msg_s_0",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "stored", "annotations": []}],
    }
}
RESPONSES: dict[str, Any] = {
    "model": "m",
    "instructions": "be brief",
    "input": [
        {"role": "developer", "content": "rules"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "hi"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,AAAA",
                    "detail": "auto",
                },
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "item_reference", "id": "msg_s_0"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"t": 1}'},
        {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
    ],
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
    "tool_choice": {"type": "function", "name": "f"},
    "parallel_tool_calls": False,
    "max_output_tokens": 10,
    "temperature": 0.5,
    "top_p": 0.9,
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    "reasoning": {"effort": "low"},
    "metadata": {"k": "v"},
    "user": "u",
    "stream": True,
    "store": True,
    "previous_response_id": "resp_1",
    "include": ["reasoning.encrypted_content"],
}
bodies = st.one_of(
    st.sampled_from([12, 50, 300]).flatmap(lambda rate: mutated(RESPONSES, rate)).map(dumps),
    st.sampled_from([12, 50, 300]).flatmap(lambda rate: mutated(RESPONSES, rate)).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=100),
)


def build_everywhere(raw: bytes) -> None:
    try:
        chat, ctx = parse_responses_request(raw, {}, LIMITS, STORED)
    except Rejected as error:
        assert error.status in (400, 404) and error.param and isinstance(error.message, str)
        assert error.status == 400 or error.code == "item_not_found"
        event(f"rejected: {error.param.split('[')[0]}")
        return
    event("accepted")
    assert not ctx.references  # resolved with the items given
    for kind in KINDS:
        for drop in (False, True):
            target = TargetModel("upstream-model", drop_params=drop)
            try:
                upstream = provider(kind).build_request(chat, target)
            except UnsupportedParams as exc:
                assert exc.params
                continue
            orjson.loads(upstream.body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies)
def test_parsed_responses_requests_build_for_every_adapter(raw: bytes) -> None:
    build_everywhere(raw)


def test_the_template_itself_is_accepted() -> None:
    chat, ctx = parse_responses_request(dumps(RESPONSES), {}, LIMITS, STORED)
    assert [m["role"] for m in chat.messages] == [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert chat.messages[3]["content"] == "stored" and chat.messages[3]["tool_calls"]
    assert ctx.store is True
