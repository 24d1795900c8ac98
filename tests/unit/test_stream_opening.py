"""A stream encoder's `ready()` (called while the upstream is silent, server/answering's
`FirstWrite`) renders the stream's opening ahead: every door's stream must be byte for
byte what it is without it, whatever comes first (a token, the winner's usage, an error,
a heartbeat, an empty end)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from gateway.config.model import LimitsConfig
from gateway.doors.messages_encode import MessagesStreamEncoder
from gateway.doors.responses_encode import ResponsesStreamEncoder
from gateway.doors.responses_parse import parse_responses_request
from gateway.streaming.encode import ChunkEncoder
from gateway.streaming.events import Event, Finish, TextDelta, UpstreamError, Usage

ERROR = UpstreamError(503, "server_error", "upstream went away", True)


def _chat() -> Any:
    return ChunkEncoder("chatcmpl-1", 1700000000, "m", include_usage=True)


def _messages() -> Any:
    return MessagesStreamEncoder("msg_1", 1700000000, "m", prompt_estimate=12)


def _responses() -> Any:
    body = orjson.dumps({"model": "m", "input": "hi"})
    ctx = parse_responses_request(body, {}, LimitsConfig())[1]
    return ResponsesStreamEncoder("resp_1", 1700000000, "m", ctx)


ENCODERS: dict[str, Callable[[], Any]] = {
    "chat": _chat,
    "messages": _messages,
    "responses": _responses,
}

# Each a list of steps: a batch of events to encode, or "heartbeat", "error", "end".
SCENARIOS: dict[str, list[Any]] = {
    "text": [[TextDelta("Hel")], [TextDelta("lo")], [Finish("stop"), Usage(5, 2)], "end"],
    "usage first": [[Usage(prompt=40), TextDelta("Hi")], [Finish("stop")], "end"],
    "raw text": [[TextDelta("a\nb", raw="a\\nb")], "end"],
    "error first": ["heartbeat", "error"],
    "error in the first batch": [[TextDelta("x"), ERROR]],
    "empty end": ["end"],
}


def _play(encoder: Any, steps: list[Any]) -> bytes:
    out = []
    for step in steps:
        if step == "heartbeat":
            out.append(encoder.heartbeat())
        elif step == "error":
            out.append(encoder.error(ERROR))
        elif step == "end":
            out.append(encoder.end())
        else:
            events: list[Event] = step
            out.append(encoder.encode(events))
    return b"".join(out)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("door", ENCODERS)
def test_a_readied_opening_changes_no_byte(door: str, scenario: str) -> None:
    steps = SCENARIOS[scenario]
    plain = _play(ENCODERS[door](), steps)
    readied = ENCODERS[door]()
    readied.ready()
    readied.ready()  # twice: the second does nothing
    assert _play(readied, steps) == plain
    assert plain  # every scenario writes something


def test_ready_renders_the_opening_ahead() -> None:
    """What ready() renders is what the first batch then writes (not rendered again)."""
    for make in ENCODERS.values():
        encoder = make()
        encoder.ready()
        opening = {
            ChunkEncoder: "_role",
            MessagesStreamEncoder: "_opening",
            ResponsesStreamEncoder: "_opening",
        }[type(encoder)]
        rendered = getattr(encoder, opening)
        assert rendered and encoder.encode([TextDelta("Hi")]).startswith(rendered)
