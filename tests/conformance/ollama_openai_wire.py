"""Conformance case for kind `ollama_openai`: Ollama's `/v1` endpoint (../shared/wire-formats.md §6).

Ollama quirks exercised: role only on the first chunk (which may already carry
text), `delta.reasoning`, whole tool calls with index and id, a dedicated
finish chunk, `system_fingerprint:"fp_ollama"`, an error chunk that ends the
stream without `[DONE]`, `{"error":"..."}` bodies, and a `retry-after` HTTP date.
"""

# ruff: noqa: E501  (wire fixtures are verbatim protocol lines)
from __future__ import annotations

from gateway.providers.base import ProviderSettings, TargetModel
from gateway.streaming.events import Finish, ReasoningDelta, ResponseMeta, TextDelta, Usage

from .cases import (
    STANDARD_MESSAGES,
    AdapterCase,
    HttpError,
    RequestShape,
    Stream,
    call,
    error,
    standard_request,
    wire,
)

OLLAMA = (
    '"id":"chatcmpl-512","object":"chat.completion.chunk","created":1735689600,'
    '"model":"llama3.2","system_fingerprint":"fp_ollama"'
)
META = ResponseMeta("llama3.2", "fp_ollama")


def ollama(text: str) -> bytes:
    return wire(text, O=OLLAMA)


CASE = AdapterCase(
    id="ollama_openai",
    settings=ProviderSettings("ollama", "ollama_openai", "http://localhost:11434/v1", "ollama"),
    target=TargetModel("llama3.2"),
    request=RequestShape(
        url="http://localhost:11434/v1/chat/completions",
        auth=("authorization", "Bearer ollama"),
        body={
            "model": "llama3.2",
            "messages": STANDARD_MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 32,
        },
        absent=("max_completion_tokens",),
        passes_extra=True,
        request=standard_request(max_tokens=None, max_completion_tokens=32),
    ),
    streams={
        "text": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

            data: {$O,"choices":[],"usage":{"prompt_tokens":26,"completion_tokens":3,"total_tokens":29}}

            data: [DONE]

            """),
            [META, TextDelta("Hello there"), Finish("stop"), Usage(26, 3, 0, 0, 29)],
            first_token="Hello",
        ),
        "reasoning": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Hmm, a"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{"content":"","reasoning":" greeting."},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{"content":"Hi!"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

            data: {$O,"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18}}

            data: [DONE]

            """),
            [
                META,
                ReasoningDelta("Hmm, a greeting."),
                TextDelta("Hi!"),
                Finish("stop"),
                Usage(10, 8, 0, 0, 18),
            ],
            first_token="Hmm, a",
        ),
        "tool_call": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_k3j2h1g0","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

            data: {$O,"choices":[],"usage":{"prompt_tokens":150,"completion_tokens":20,"total_tokens":170}}

            data: [DONE]

            """),
            [
                META,
                call(0, "call_k3j2h1g0", "get_weather", '{"city":"Oslo"}'),
                Finish("tool_calls"),
                Usage(150, 20, 0, 0, 170),
            ],
            first_token="call_k3j2h1g0",
        ),
        "parallel_tool_calls": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_a1","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},{"id":"call_b2","index":1,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

            data: [DONE]

            """),
            [
                META,
                call(0, "call_a1", "get_weather", '{"city":"Oslo"}'),
                call(1, "call_b2", "get_weather", '{"city":"Rome"}'),
                Finish("tool_calls"),
            ],
        ),
        "usage": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"Ok"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

            data: {$O,"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":1,"total_tokens":32}}

            data: [DONE]

            """),
            [META, TextDelta("Ok"), Finish("stop"), Usage(31, 1, 0, 0, 32)],
        ),
        "length": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"Lorem ipsum"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}

            data: [DONE]

            """),
            [META, TextDelta("Lorem ipsum"), Finish("length")],
        ),
        "content_filter": None,  # Ollama has no content filter
        # Ollama writes the error chunk and stops: no [DONE].
        "midstream_error": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"Once"},"finish_reason":null}]}

            data: {"error":{"message":"an error was encountered while running the model: unexpected EOF","type":"api_error","param":null,"code":null}}

            """),
            [
                META,
                TextDelta("Once"),
                error(
                    502,
                    "api_error",
                    True,
                    "an error was encountered while running the model: unexpected EOF",
                ),
            ],
        ),
        "truncated": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":"Once"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{"content":" upon"},"finish_reason":null}]}
            """),
            [META, TextDelta("Once upon"), error(502, "upstream_stream_truncated", True)],
        ),
        "prelude": Stream(
            ollama(r"""
            data: {$O,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{"content":"Yo"},"finish_reason":null}]}

            data: {$O,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

            data: [DONE]

            """),
            [META, TextDelta("Yo"), Finish("stop")],
            first_token="Yo",
        ),
    },
    response=Stream(
        wire(r"""
        {"id":"chatcmpl-77","object":"chat.completion","created":1735689600,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant","content":"","reasoning":"Need the weather tool.","tool_calls":[{"id":"call_z9","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":40,"completion_tokens":25,"total_tokens":65}}
        """),
        [
            META,
            ReasoningDelta("Need the weather tool."),
            call(0, "call_z9", "get_weather", '{"city":"Oslo"}'),
            Finish("tool_calls"),
            Usage(40, 25, 0, 0, 65),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":{"message":"invalid message content type: <nil>","type":"invalid_request_error","param":null,"code":null}}
            """),
            expected={"type": "invalid_request_error", "code": None, "param": None},
        ),
        HttpError(
            401,  # behind an authenticating reverse proxy
            b'{"error":"unauthorized"}',
            expected={"message": "unauthorized"},
        ),
        HttpError(
            404,  # the deployment names a model that was never pulled
            wire(r"""
            {"error":{"message":"model \"llama9\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}
            """),
            expected={"retryable": False, "opens_circuit": True, "type": "not_found_error"},
        ),
        HttpError(
            429,
            wire(r"""
            {"error":{"message":"server busy, please try again.  maximum pending requests exceeded","type":"api_error","param":null,"code":null}}
            """),
            headers={
                "Retry-After": "Wed, 21 Oct 2026 07:28:05 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            expected={"retry_after_s": 5.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"error":{"message":"llama runner process has terminated: signal: killed","type":"api_error","param":null,"code":null}}
            """),
            expected={"type": "api_error"},
        ),
        HttpError(503, b'{"error":"server overloaded"}', expected={"message": "server overloaded"}),
    ],
)
