"""Conformance case for kind `anthropic` (../shared/wire-formats.md §2).

Written by hand in the shape of the Messages API stream (§2 example; vercel/ai's
recorded anthropic-*.chunks.txt): every event has an `event:` line naming it.
"""

# ruff: noqa: E501  (wire fixtures are verbatim protocol lines)
from __future__ import annotations

from gateway.providers.base import ProviderSettings, TargetModel
from gateway.streaming.events import (
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    ResponseMeta,
    TextDelta,
    Usage,
)

from .cases import AdapterCase, HttpError, RequestShape, Stream, call, error, wire

KEY = "sk-ant-test-0123456789"
MODEL = "claude-haiku-4-5-20251001"
META = ResponseMeta(MODEL)
START = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL",'
    '"type":"message","role":"assistant","content":[],"model":"' + MODEL + '",'
    '"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":19,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,'
    '"service_tier":"standard"}}}'
)
U0 = Usage(19, 0, 0, 0)  # message_start: the prompt; output_tokens there is a placeholder


def an(text: str) -> bytes:
    return wire(text, START=START)


CASE = AdapterCase(
    id="anthropic",
    settings=ProviderSettings("claude", "anthropic", "https://api.anthropic.com", KEY),
    target=TargetModel("claude-haiku-4-5"),
    request=RequestShape(
        url="https://api.anthropic.com/v1/messages",
        auth=("x-api-key", KEY),
        body={
            "model": "claude-haiku-4-5",
            "system": [{"type": "text", "text": "You are terse."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]}
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stream": True,
        },
        absent=("stream_options", "max_completion_tokens"),
        headers={"anthropic-version": "2023-06-01", "accept": "text/event-stream"},
    ),
    streams={
        "text": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: ping
            data: {"type": "ping"}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [META, U0, TextDelta("Hello, world"), Usage(19, 6), Finish("stop")],
            first_token="Hello",
        ),
        "reasoning": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" the weather."}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: content_block_start
            data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Cold."}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":1}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [
                META,
                U0,
                ReasoningDelta("The user wants the weather."),
                ReasoningSignature("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"),
                TextDelta("Cold."),
                Usage(19, 40),
                Finish("stop"),
            ],
            first_token="The user wants",
        ),
        "tool_call": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

            event: ping
            data: {"type": "ping"}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Oslo\"}"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":31}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [
                META,
                U0,
                call(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", '{"city": "Oslo"}'),
                Usage(19, 31),
                Finish("tool_calls"),
            ],
            first_token="get_weather",
        ),
        # Text first (content block 0), then two tool_use blocks: tool call indexes count
        # tool blocks only. The second tool takes no arguments (only "" is streamed).
        "parallel_tool_calls": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: content_block_start
            data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Oslo\"}"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":1}

            event: content_block_start
            data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01B","name":"get_time","input":{}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":2}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":58}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [
                META,
                U0,
                TextDelta("Checking."),
                call(0, "toolu_01A", "get_weather", '{"city": "Oslo"}'),
                call(1, "toolu_01B", "get_time", "{}"),
                Usage(19, 58),
                Finish("tool_calls"),
            ],
        ),
        # Prompt caching: prompt = input + cache_creation + cache_read; newer responses
        # repeat the input fields in message_delta (cumulative, replacing earlier values).
        "usage": Stream(
            wire(r"""
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5-20251001","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":6,"cache_creation_input_tokens":80,"cache_read_input_tokens":1920,"output_tokens":1}}}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"42"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":6,"cache_creation_input_tokens":80,"cache_read_input_tokens":1920,"output_tokens":300}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [
                META,
                Usage(2006, 0, 1920),
                TextDelta("42"),
                Usage(2006, 300, 1920),
                Finish("stop"),
            ],
        ),
        "length": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":64}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [META, U0, TextDelta("Once upon"), Usage(19, 64), Finish("length")],
        ),
        "content_filter": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I can"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null},"usage":{"output_tokens":3}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [META, U0, TextDelta("I can"), Usage(19, 3), Finish("content_filter")],
        ),
        "midstream_error": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

            event: error
            data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

            """),
            [META, U0, TextDelta("Hel"), error(529, "overloaded_error", True, "Overloaded")],
        ),
        "truncated": Stream(
            an(r"""
            $START

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"te"""),
            [META, U0, TextDelta("Hello"), error(502, "upstream_stream_truncated", True)],
        ),
        # message_start (its output_tokens:1 is a placeholder), an empty text block,
        # pings and an empty text delta: none of them is a token.
        "prelude": Stream(
            an(r"""
            $START

            event: ping
            data: {"type": "ping"}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: ping
            data: {"type": "ping"}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}

            event: message_stop
            data: {"type":"message_stop"}

            """),
            [META, U0, TextDelta("Hi"), Usage(19, 2), Finish("stop")],
            first_token="Hi",
        ),
    },
    response=Stream(
        wire(r"""
        {"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"city":"Oslo"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":82,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,"output_tokens":17}}
        """),
        [
            META,
            TextDelta("Let me check."),
            call(0, "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"city":"Oslo"}'),
            Usage(146, 17, 64),
            Finish("tool_calls"),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}
            """),
            expected={"type": "invalid_request_error", "message": "max_tokens: Field required"},
        ),
        HttpError(
            401,
            wire(r"""
            {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fz"}
            """),
            expected={"type": "authentication_error"},
        ),
        HttpError(
            429,
            wire(r"""
            {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50 requests per minute."},"request_id":"req_1"}
            """),
            headers={"retry-after": "13", "anthropic-ratelimit-requests-remaining": "0"},
            expected={"type": "rate_limit_error", "retry_after_s": 13.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"type":"error","error":{"type":"api_error","message":"Internal server error"},"request_id":"req_2"}
            """),
            expected={"type": "api_error"},
        ),
        HttpError(
            503,
            b"<html><body>upstream connect error or disconnect/reset before headers</body></html>",
            headers={"content-type": "text/html"},
            expected={"message": "upstream returned HTTP 503"},
        ),
        HttpError(
            529,
            wire(r"""
            {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_3"}
            """),
            headers={"x-should-retry": "true"},
            expected={"type": "overloaded_error", "retryable": True, "opens_circuit": True},
        ),
    ],
)
