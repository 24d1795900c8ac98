"""Conformance case for kind `ollama` (native `/api/chat`, ../shared/wire-formats.md §6).

Written by hand in the shape of ollama/ollama `docs/api.md` and `api/types.go`:
one JSON object per line, the last with `done: true`, `done_reason` and the counts.
"""

# ruff: noqa: E501  (wire fixtures are verbatim protocol lines)
from __future__ import annotations

from gateway.providers.base import ProviderSettings, TargetModel
from gateway.streaming.events import (
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    Usage,
)

from .cases import AdapterCase, HttpError, RequestShape, Stream, call, error, wire

META = ResponseMeta("llama3.2")
H = '"model":"llama3.2","created_at":"2025-06-01T10:00:00.000000001Z"'
DONE = (
    '"done":true,"done_reason":"stop","total_duration":1200000000,"load_duration":1000000,'
    '"prompt_eval_count":26,"prompt_eval_duration":20000000,"eval_count":8,'
    '"eval_duration":40000000'
)
U = Usage(26, 8)
# Ollama sends no tool call ids; the adapter makes them up from the response's created_at,
# so that calls of different turns of one conversation get different ids.
CALL_ID = "call_b8357249337f"


def ol(text: str) -> bytes:
    return wire(text, H=H, DONE=DONE)


CASE = AdapterCase(
    id="ollama",
    settings=ProviderSettings("local", "ollama", "http://127.0.0.1:11434"),
    target=TargetModel("llama3.2"),
    request=RequestShape(
        url="http://127.0.0.1:11434/api/chat",
        auth=None,
        body={
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Oslo?"},
            ],
            "stream": True,
            "options": {"temperature": 0.2, "num_predict": 64},
        },
        absent=("temperature", "max_tokens", "stream_options"),
        headers={"accept": "application/x-ndjson"},
    ),
    streams={
        "text": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"Hello"},"done":false}
            {$H,"message":{"role":"assistant","content":", world"},"done":false}
            {$H,"message":{"role":"assistant","content":""},$DONE}
            """),
            [META, TextDelta("Hello, world"), U, Finish("stop")],
            first_token="Hello",
        ),
        # With `think`, thinking arrives in lines whose content is empty.
        "reasoning": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"","thinking":"The user wants"},"done":false}
            {$H,"message":{"role":"assistant","content":"","thinking":" the weather."},"done":false}
            {$H,"message":{"role":"assistant","content":"Cold."},"done":false}
            {$H,"message":{"role":"assistant","content":""},$DONE}
            """),
            [
                META,
                ReasoningDelta("The user wants the weather."),
                TextDelta("Cold."),
                U,
                Finish("stop"),
            ],
            first_token="The user wants",
        ),
        # Tool calls arrive whole, arguments as an object; done_reason is still "stop".
        "tool_call": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"get_weather","arguments":{"city":"Oslo"}}}]},"done":false}
            {$H,"message":{"role":"assistant","content":""},$DONE}
            """),
            [
                META,
                call(0, CALL_ID + "_0", "get_weather", '{"city":"Oslo"}'),
                U,
                Finish("tool_calls"),
            ],
            first_token="get_weather",
        ),
        "parallel_tool_calls": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"","tool_calls":[{"id":"call_k3hd72","function":{"index":0,"name":"get_weather","arguments":{"city":"Oslo"}}},{"id":"call_p0q1z8","function":{"index":1,"name":"get_time","arguments":{}}}]},"done":false}
            {$H,"message":{"role":"assistant","content":""},$DONE}
            """),
            [
                META,
                call(0, "call_k3hd72", "get_weather", '{"city":"Oslo"}'),
                call(1, "call_p0q1z8", "get_time", "{}"),
                U,
                Finish("tool_calls"),
            ],
        ),
        "usage": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"42"},"done":false}
            {$H,"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":2006,"prompt_eval_duration":383809000,"eval_count":300,"eval_duration":4799921000}
            """),
            [META, TextDelta("42"), Usage(2006, 300), Finish("stop")],
        ),
        "length": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"Once upon"},"done":false}
            {$H,"message":{"role":"assistant","content":""},"done":true,"done_reason":"length","total_duration":1200000000,"prompt_eval_count":26,"eval_count":64}
            """),
            [META, TextDelta("Once upon"), Usage(26, 64), Finish("length")],
        ),
        "content_filter": None,  # Ollama has no content filter: done_reason is stop or length
        # Mid-stream the status stays 200 and one {"error": "..."} line ends the body.
        "midstream_error": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"Hel"},"done":false}
            {"error":"an error was encountered while running the model: unexpected EOF"}
            """),
            [
                META,
                TextDelta("Hel"),
                error(
                    502,
                    "upstream_error",
                    True,
                    "an error was encountered while running the model: unexpected EOF",
                ),
            ],
        ),
        "truncated": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":"Hello"},"done":false}
            {$H,"message":{"role":"assistant","content":", wo"""),
            [META, TextDelta("Hello"), error(502, "upstream_stream_truncated", True)],
        ),
        # Lines with empty content (e.g. while a reasoning model opens its think block).
        "prelude": Stream(
            ol(r"""
            {$H,"message":{"role":"assistant","content":""},"done":false}
            {$H,"message":{"role":"assistant","content":""},"done":false}
            {$H,"message":{"role":"assistant","content":"Hi"},"done":false}
            {$H,"message":{"role":"assistant","content":""},$DONE}
            """),
            [META, TextDelta("Hi"), U, Finish("stop")],
            first_token="Hi",
        ),
    },
    response=Stream(
        wire(r"""
        {"model":"llama3.2","created_at":"2025-06-01T10:00:05.000000001Z","message":{"role":"assistant","content":"Let me check.","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Oslo"}}}]},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":82,"prompt_eval_duration":342546000,"eval_count":17,"eval_duration":4535599000}
        """),
        [
            META,
            TextDelta("Let me check."),
            call(0, "call_4294ac9a9977_0", "get_weather", '{"city":"Oslo"}'),
            Usage(82, 17),
            Finish("tool_calls"),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":"invalid options: num_predict must be an integer"}
            """),
            expected={
                "type": "invalid_request_error",
                "message": "invalid options: num_predict must be an integer",
            },
        ),
        HttpError(401, wire(r"""{"error":"unauthorized"}"""), expected={"message": "unauthorized"}),
        # A model that is not pulled: the deployment is misconfigured, the circuit opens.
        HttpError(
            404,
            wire(r"""
            {"error":"model 'llama9' not found, try pulling it first"}
            """),
            expected={"type": "not_found_error", "retryable": False, "opens_circuit": True},
        ),
        HttpError(
            429,
            wire(
                r"""{"error":"server busy, please try again.  maximum pending requests exceeded"}"""
            ),
            headers={"Retry-After": "1"},
            expected={"type": "rate_limit_error", "retry_after_s": 1.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"error":"llama runner process has terminated: exit status 2"}
            """),
            expected={"type": "api_error"},
        ),
        HttpError(
            503,
            b"",
            expected={"message": "upstream returned HTTP 503"},
        ),
    ],
)
