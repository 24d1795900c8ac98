"""Conformance case for kind `deepseek` (../shared/wire-formats.md §5).

DeepSeek quirks exercised: `: keep-alive` comments before the first chunk,
`reasoning_content`, usage riding on the finish chunk (no `choices:[]` chunk),
`prompt_cache_hit_tokens`, blank lines before a non-streaming body.
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

C = (
    '"id":"5f1e8c1a-0d9b-4a3e-9a51-8d7c3b2a1f00","object":"chat.completion.chunk",'
    '"created":1737000000,"model":"deepseek-chat","system_fingerprint":"fp_3a5770e1b4_prod0225"'
)
R = (
    '"id":"7c2d9e4b-1a8f-4c6d-b3e2-9f0a1b2c3d4e","object":"chat.completion.chunk",'
    '"created":1737000000,"model":"deepseek-reasoner","system_fingerprint":"fp_7e73fd9a08_prod0225"'
)
C_META = ResponseMeta("deepseek-chat", "fp_3a5770e1b4_prod0225")
R_META = ResponseMeta("deepseek-reasoner", "fp_7e73fd9a08_prod0225")
KEY = "sk-test-deepseek-0123456789"

CASE = AdapterCase(
    id="deepseek",
    settings=ProviderSettings("ds", "deepseek", "https://api.deepseek.com", KEY),
    target=TargetModel("deepseek-chat"),
    request=RequestShape(
        url="https://api.deepseek.com/chat/completions",
        auth=("authorization", f"Bearer {KEY}"),
        body={
            "model": "deepseek-chat",
            "messages": STANDARD_MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 64,  # the client's max_completion_tokens, under DeepSeek's name
        },
        absent=("max_completion_tokens",),
        passes_extra=True,
        request=standard_request(max_tokens=None, max_completion_tokens=64),
    ),
    streams={
        "text": Stream(
            wire(
                r"""
                : keep-alive

                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":0},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":11}}

                data: [DONE]

                """,
                C=C,
            ),
            [C_META, TextDelta("Hello!"), Finish("stop"), Usage(11, 2, 0, 0, 13)],
            first_token="Hello",
        ),
        "reasoning": Stream(
            wire(
                r"""
                data: {$R,"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":""},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"The user"},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":null,"reasoning_content":" wants a greeting."},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":"Hi","reasoning_content":null},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":" there","reasoning_content":null},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":"","reasoning_content":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":13,"completion_tokens":40,"total_tokens":53,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":36},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":13}}

                data: [DONE]

                """,
                R=R,
            ),
            [
                R_META,
                ReasoningDelta("The user wants a greeting."),
                TextDelta("Hi there"),
                Finish("stop"),
                Usage(13, 40, 0, 36, 53),
            ],
            first_token="The user",
        ),
        "tool_call": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_00_kQ3xZ9","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city\":\"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":18,"total_tokens":138,"prompt_tokens_details":{"cached_tokens":64},"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":56}}

                data: [DONE]

                """,
                C=C,
            ),
            [
                C_META,
                call(0, "call_00_kQ3xZ9", "get_weather", '{"city":"Oslo"}'),
                Finish("tool_calls"),
                Usage(120, 18, 64, 0, 138),
            ],
            first_token="get_weather",
        ),
        "parallel_tool_calls": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_00_a1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_01_b2","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":\"Bergen\"}"}}]},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":120}}

                data: [DONE]

                """,
                C=C,
            ),
            [
                C_META,
                call(0, "call_00_a1", "get_weather", '{"city":"Oslo"}'),
                call(1, "call_01_b2", "get_weather", '{"city":"Bergen"}'),
                Finish("tool_calls"),
                Usage(120, 30, 0, 0, 150),
            ],
        ),
        "usage": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"Sure."},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1024,"completion_tokens":5,"total_tokens":1029,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":384}}

                data: [DONE]

                """,
                C=C,
            ),
            [C_META, TextDelta("Sure."), Finish("stop"), Usage(1024, 5, 640, 0, 1029)],
        ),
        "length": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"Long answer"},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":9}}

                data: [DONE]

                """,
                C=C,
            ),
            [C_META, TextDelta("Long answer"), Finish("length"), Usage(9, 2, 0, 0, 11)],
        ),
        "content_filter": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"I"},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"content_filter"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":9}}

                data: [DONE]

                """,
                C=C,
            ),
            [C_META, TextDelta("I"), Finish("content_filter"), Usage(9, 1, 0, 0, 10)],
        ),
        "midstream_error": Stream(
            wire(
                r"""
                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}

                data: {"error":{"message":"Internal server error","type":"internal_error","param":null,"code":"internal_error"}}

                data: [DONE]

                """,
                C=C,
            ),
            [
                C_META,
                TextDelta("Hel"),
                error(502, "internal_error", True, "Internal server error", code="internal_error"),
            ],
        ),
        # The last event lacks its blank line and the stream has no finish: truncated.
        "truncated": Stream(
            wire(
                r"""
                : keep-alive

                data: {$C,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}

                data: {$C,"choices":[{"index":0,"delta":{"content":"lo"},"logprobs":null,"finish_reason":null}]}""",
                C=C,
            ),
            [C_META, TextDelta("Hello"), error(502, "upstream_stream_truncated", True)],
        ),
        "prelude": Stream(
            wire(
                r"""
                : keep-alive

                : keep-alive

                : keep-alive

                data: {$R,"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":""},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"Okay"},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":"Hi","reasoning_content":null},"logprobs":null,"finish_reason":null}]}

                data: {$R,"choices":[{"index":0,"delta":{"content":"","reasoning_content":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"completion_tokens_details":{"reasoning_tokens":1},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":5}}

                data: [DONE]

                """,
                R=R,
            ),
            [R_META, ReasoningDelta("Okay"), TextDelta("Hi"), Finish("stop"), Usage(5, 3, 0, 1, 8)],
            first_token="Okay",
        ),
    },
    # Non-streaming: DeepSeek sends blank lines while it works, then the JSON.
    response=Stream(
        b"\n\n\n"
        + wire(r"""
        {"id":"9e0f1a2b-3c4d","object":"chat.completion","created":1737000000,"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"4","reasoning_content":"2+2 is 4."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":15},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":10},"system_fingerprint":"fp_7e73fd9a08_prod0225"}
        """),
        [
            R_META,
            ReasoningDelta("2+2 is 4."),
            TextDelta("4"),
            Finish("stop"),
            Usage(10, 20, 0, 15, 30),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":{"message":"Failed to deserialize the JSON body into the target type: messages[1]: missing field `content`","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}
            """),
            expected={"type": "invalid_request_error", "code": "invalid_request_error"},
        ),
        HttpError(
            401,
            wire(r"""
            {"error":{"message":"Authentication Fails, Your api key: ****6789 is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}
            """),
            expected={"type": "authentication_error"},
        ),
        HttpError(
            402,  # insufficient balance: the account, not the request; retrying won't help
            wire(r"""
            {"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}
            """),
            expected={"retryable": False, "opens_circuit": True, "message": "Insufficient Balance"},
        ),
        HttpError(
            429,
            wire(r"""
            {"error":{"message":"Rate Limit Reached","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}
            """),
            headers={"retry-after-ms": "1500", "retry-after": "2"},
            expected={"retry_after_s": 1.5, "type": "rate_limit_error"},
        ),
        HttpError(
            500,
            wire(r"""
            {"error":{"message":"Internal Server Error","type":"internal_error","param":null,"code":"internal_error"}}
            """),
        ),
        HttpError(
            503,
            wire(r"""
            {"error":{"message":"The server is overloaded due to high traffic. Please retry after a brief wait.","type":"server_overloaded","param":null,"code":"server_overloaded"}}
            """),
            expected={"code": "server_overloaded"},
        ),
    ],
)
