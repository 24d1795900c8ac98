"""Conformance case for kind `vllm` (../shared/wire-formats.md §6b).

vLLM quirks exercised: `delta.reasoning`, keys left out rather than null
(`exclude_unset`), a tool call whose first fragment has no `arguments`,
`continuous_usage_stats` (usage on every chunk), `[DONE]` after an in-stream
error, integer error `code`s, the old flat error shape and `{"error":"Unauthorized"}`.
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
    wire,
)

V = '"id":"chatcmpl-9f8e7d6c5b4a","object":"chat.completion.chunk","created":1738000000,"model":"Qwen/Qwen3-8B"'
META = ResponseMeta("Qwen/Qwen3-8B")
KEY = "token-abc123-vllm"


def vllm(text: str) -> bytes:
    return wire(text, V=V)


CASE = AdapterCase(
    id="vllm",
    settings=ProviderSettings(
        "local-vllm",
        "vllm",
        "http://127.0.0.1:8000/v1/",
        KEY,
        {"headers": {"X-Tenant": "team-a"}},
    ),
    target=TargetModel("Qwen/Qwen3-8B"),
    request=RequestShape(
        url="http://127.0.0.1:8000/v1/chat/completions",
        auth=("authorization", f"Bearer {KEY}"),
        body={
            "model": "Qwen/Qwen3-8B",
            "messages": STANDARD_MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 64,
        },
        passes_extra=True,
        headers={"x-tenant": "team-a", "accept": "text/event-stream"},
    ),
    streams={
        "text": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":14,"total_tokens":17,"completion_tokens":3}}

            data: [DONE]

            """),
            [META, TextDelta("Hello world"), Finish("stop"), Usage(14, 3, 0, 0, 17)],
            first_token="Hello",
        ),
        "reasoning": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"reasoning":"Okay, the"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"reasoning":" user says hi."},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":"Hi!"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":9,"total_tokens":21,"completion_tokens":12}}

            data: [DONE]

            """),
            [
                META,
                ReasoningDelta("Okay, the user says hi."),
                TextDelta("Hi!"),
                Finish("stop"),
                Usage(9, 12, 0, 0, 21),
            ],
            first_token="Okay, the",
        ),
        "tool_call": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-4f2a9c","type":"function","index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \""}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":200,"total_tokens":221,"completion_tokens":21}}

            data: [DONE]

            """),
            [
                META,
                call(0, "chatcmpl-tool-4f2a9c", "get_weather", '{"city": "Oslo"}'),
                Finish("tool_calls"),
                Usage(200, 21, 0, 0, 221),
            ],
            first_token="get_weather",
        ),
        "parallel_tool_calls": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-aa","type":"function","index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-bb","type":"function","index":1,"function":{"name":"get_time"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":210,"total_tokens":240,"completion_tokens":30}}

            data: [DONE]

            """),
            [
                META,
                call(0, "chatcmpl-tool-aa", "get_weather", '{"city": "Oslo"}'),
                call(1, "chatcmpl-tool-bb", "get_time", "{}"),
                Finish("tool_calls"),
                Usage(210, 30, 0, 0, 240),
            ],
        ),
        "usage": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":"Yes"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":512,"total_tokens":513,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":496}}}

            data: [DONE]

            """),
            [META, TextDelta("Yes"), Finish("stop"), Usage(512, 1, 496, 0, 513)],
        ),
        "length": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":"The first"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]}

            data: {$V,"choices":[],"usage":{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2}}

            data: [DONE]

            """),
            [META, TextDelta("The first"), Finish("length"), Usage(7, 2, 0, 0, 9)],
        ),
        "content_filter": None,  # vLLM has no content filter
        "midstream_error": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":"Sum"},"logprobs":null,"finish_reason":null}]}

            data: {"error":{"message":"This model's maximum context length is 8192 tokens. However, you requested 8200 tokens.","type":"BadRequestError","param":null,"code":400}}

            data: [DONE]

            """),
            [
                META,
                TextDelta("Sum"),
                error(
                    400,
                    "BadRequestError",
                    False,
                    "This model's maximum context length is 8192 tokens. However, you requested"
                    " 8200 tokens.",
                    code="400",
                    opens_circuit=False,
                ),
            ],
        ),
        "truncated": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"content":"Partial"},"logprobs":null,"finish_reason":null}]}

            data: {$V,"choices":[{"index":0,"delta":{"cont"""),
            [META, TextDelta("Partial"), error(502, "upstream_stream_truncated", True)],
        ),
        # continuous_usage_stats: usage on every chunk, before the first token too.
        "prelude": Stream(
            vllm(r"""
            data: {$V,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":12,"completion_tokens":0}}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":12,"completion_tokens":0}}

            data: {$V,"choices":[{"index":0,"delta":{"content":"Hey"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}

            data: {$V,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}

            data: [DONE]

            """),
            [
                META,
                Usage(12, 0, 0, 0, 12),
                Usage(12, 0, 0, 0, 12),
                TextDelta("Hey"),
                Usage(12, 1, 0, 0, 13),
                Finish("stop"),
                Usage(12, 2, 0, 0, 14),
            ],
            first_token="Hey",
        ),
    },
    response=Stream(
        wire(r"""
        {"id":"chatcmpl-0c1d2e3f","object":"chat.completion","created":1738000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"message":{"role":"assistant","reasoning":"Greeting back.","content":"Hello!","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":9,"total_tokens":15,"completion_tokens":6,"prompt_tokens_details":null},"prompt_logprobs":null}
        """),
        [
            META,
            ReasoningDelta("Greeting back."),
            TextDelta("Hello!"),
            Finish("stop"),
            Usage(9, 6, 0, 0, 15),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":{"message":"The model `gpt-4` does not exist.","type":"NotFoundError","param":"model","code":400}}
            """),
            expected={"type": "NotFoundError", "code": "400", "param": "model"},
        ),
        HttpError(
            401,
            b'{"error":"Unauthorized"}',
            expected={"message": "Unauthorized", "type": "authentication_error", "code": None},
        ),
        HttpError(
            429,
            wire(r"""
            {"object":"error","message":"Too many requests","type":"TooManyRequests","param":null,"code":429}
            """),
            headers={"Retry-After": "3"},
            expected={"code": "429", "retry_after_s": 3.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"object":"error","message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,"code":500}
            """),
            expected={"type": "InternalServerError", "code": "500"},
        ),
        HttpError(503, b"", expected={"message": "upstream returned HTTP 503"}),
    ],
)
