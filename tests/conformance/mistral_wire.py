"""Conformance case for kind `mistral` (../shared/wire-formats.md §4).

Mistral quirks exercised: usage on the finish chunk without being asked for,
whole tool calls with no `index`/`type`, array `content` with `thinking` parts
(magistral), finish reason `error`, flat `{"object":"error"}` and FastAPI
`{"detail":[...]}` error bodies; the request has no `stream_options` and sends
`seed` as `random_seed`.
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

S = (
    '"id":"6b2c4a8e5f3d4b1a9c7e2d0f1a3b5c7d","object":"chat.completion.chunk",'
    '"created":1736000000,"model":"mistral-small-latest"'
)
M = (
    '"id":"0a1b2c3d4e5f40718293a4b5c6d7e8f9","object":"chat.completion.chunk",'
    '"created":1736000000,"model":"magistral-medium-2509"'
)
S_META = ResponseMeta("mistral-small-latest")
KEY = "mistral-test-key-0123456789"

CASE = AdapterCase(
    id="mistral",
    settings=ProviderSettings("mistral", "mistral", "https://api.mistral.ai/v1", KEY),
    target=TargetModel("mistral-small-latest"),
    request=RequestShape(
        url="https://api.mistral.ai/v1/chat/completions",
        auth=("authorization", f"Bearer {KEY}"),
        body={
            "model": "mistral-small-latest",
            "messages": STANDARD_MESSAGES,
            "stream": True,
            "random_seed": 7,
            "max_tokens": 64,
        },
        absent=("seed", "stream_options"),
        passes_extra=True,
        request=standard_request(seed=7),
    ),
    streams={
        "text": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Bonjour"},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":" !"},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3}}

                data: [DONE]

                """,
                S=S,
            ),
            [S_META, TextDelta("Bonjour !"), Finish("stop"), Usage(10, 3, 0, 0, 13)],
            first_token="Bonjour",
        ),
        "reasoning": Stream(
            wire(
                r"""
                data: {$M,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$M,"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"Count the"}]}]},"finish_reason":null}]}

                data: {$M,"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":" letters."}]}]},"finish_reason":null}]}

                data: {$M,"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"There are"}]},"finish_reason":null}]}

                data: {$M,"choices":[{"index":0,"delta":{"content":" three."},"finish_reason":null}]}

                data: {$M,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"total_tokens":60,"completion_tokens":40}}

                data: [DONE]

                """,
                M=M,
            ),
            [
                ResponseMeta("magistral-medium-2509"),
                ReasoningDelta("Count the letters."),
                TextDelta("There are three."),
                Finish("stop"),
                Usage(20, 40, 0, 0, 60),
            ],
            first_token="Count the",
        ),
        # Mistral sends the call whole, with no index and no type, with finish and usage.
        "tool_call": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"tool_calls":[{"id":"gSIMJiOkT","function":{"name":"get_weather","arguments":"{\"city\": \"Oslo\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":124,"total_tokens":146,"completion_tokens":22}}

                data: [DONE]

                """,
                S=S,
            ),
            [
                S_META,
                call(0, "gSIMJiOkT", "get_weather", '{"city": "Oslo"}'),
                Finish("tool_calls"),
                Usage(124, 22, 0, 0, 146),
            ],
            first_token="gSIMJiOkT",
        ),
        "parallel_tool_calls": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"tool_calls":[{"id":"Xk2Lp9QaZ","function":{"name":"get_weather","arguments":"{\"city\": \"Oslo\"}"}},{"id":"Bq7Rt3WmY","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":130,"total_tokens":170,"completion_tokens":40}}

                data: [DONE]

                """,
                S=S,
            ),
            [
                S_META,
                call(0, "Xk2Lp9QaZ", "get_weather", '{"city": "Oslo"}'),
                call(1, "Bq7Rt3WmY", "get_weather", '{"city": "Paris"}'),
                Finish("tool_calls"),
                Usage(130, 40, 0, 0, 170),
            ],
        ),
        "usage": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Oui."},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":2048,"total_tokens":2050,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1536}}}

                data: [DONE]

                """,
                S=S,
            ),
            [S_META, TextDelta("Oui."), Finish("stop"), Usage(2048, 2, 1536, 0, 2050)],
        ),
        "length": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Il était"},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}

                data: [DONE]

                """,
                S=S,
            ),
            [S_META, TextDelta("Il était"), Finish("length"), Usage(8, 2, 0, 0, 10)],
        ),
        "content_filter": None,  # finish reasons are stop, length, tool_calls, error
        # Mistral reports a failure mid-stream as finish_reason "error".
        "midstream_error": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Je"},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"usage":{"prompt_tokens":8,"total_tokens":9,"completion_tokens":1}}

                data: [DONE]

                """,
                S=S,
            ),
            [S_META, TextDelta("Je"), error(502, "upstream_error", True)],
        ),
        "truncated": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Je pense"},"finish_reason":null}]}

                """,
                S=S,
            ),
            [S_META, TextDelta("Je pense"), error(502, "upstream_stream_truncated", True)],
        ),
        "prelude": Stream(
            wire(
                r"""
                data: {$S,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":"Salut"},"finish_reason":null}]}

                data: {$S,"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"total_tokens":5,"completion_tokens":1}}

                data: [DONE]

                """,
                S=S,
            ),
            [S_META, TextDelta("Salut"), Finish("stop"), Usage(4, 1, 0, 0, 5)],
            first_token="Salut",
        ),
    },
    response=Stream(
        wire(r"""
        {"id":"cmpl-e5cc70bb28c444948073e77776eb30ef","object":"chat.completion","created":1736000000,"model":"magistral-medium-2509","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Simple sum."}]},{"type":"text","text":"2 + 2 = 4"}],"tool_calls":null,"prefix":false},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"total_tokens":30,"completion_tokens":18}}
        """),
        [
            ResponseMeta("magistral-medium-2509"),
            ReasoningDelta("Simple sum."),
            TextDelta("2 + 2 = 4"),
            Finish("stop"),
            Usage(12, 18, 0, 0, 30),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}
            """),
            expected={
                "type": "invalid_model",
                "code": "1500",
                "message": "Invalid model: mistral-huge",
            },
        ),
        HttpError(
            401,
            wire(r"""
            {"message":"Unauthorized","request_id":"5b0b2c7e8d9f4a1b"}
            """),
            expected={"message": "Unauthorized", "type": "authentication_error"},
        ),
        HttpError(
            422,
            wire(r"""
            {"detail":[{"type":"extra_forbidden","loc":["body","foo"],"msg":"Extra inputs are not permitted","input":1}]}
            """),
            expected={
                "retryable": False,
                "opens_circuit": False,
                "message": "body.foo: Extra inputs are not permitted",
            },
        ),
        HttpError(
            429,
            wire(r"""
            {"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}
            """),
            headers={"retry-after": "1"},
            expected={"type": "rate_limited", "code": "1300", "retry_after_s": 1.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"object":"error","message":"Internal server error","type":"internal_server_error","param":null,"code":"3000"}
            """),
            expected={"code": "3000"},
        ),
        HttpError(
            503,
            b"upstream connect error or disconnect/reset before headers. reset reason: overflow",
            headers={"content-type": "text/plain"},
            expected={"message": "upstream returned HTTP 503", "type": "api_error"},
        ),
    ],
)
