"""Conformance case for kind `openai` (../shared/wire-formats.md §1, incl. Azure quirks).

Written by hand as api.openai.com sends it (shapes from the recorded streams §1 cites).
"""

# ruff: noqa: E501  (wire fixtures are verbatim protocol lines)
from __future__ import annotations

from gateway.providers.base import ProviderSettings, TargetModel
from gateway.streaming.events import (
    Finish,
    ResponseMeta,
    TextDelta,
    Usage,
)

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

OA = (
    '"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1731000000,'
    '"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0ba0d124f1"'
)
OA_META = ResponseMeta("gpt-4o-mini-2024-07-18", "fp_0ba0d124f1")
OA_USAGE = (
    'data: {$H,"choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,'
    '"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}\n\n'
)
OA_U = Usage(19, 10, 0, 0, 29)


def oa(text: str) -> bytes:
    return wire(text.replace("$USAGE\n", OA_USAGE), H=OA)


CASE = AdapterCase(
    id="openai",
    settings=ProviderSettings(
        "oai", "openai", "https://api.openai.com/v1", "sk-test-openai-0123456789"
    ),
    target=TargetModel("gpt-4o-mini"),
    request=RequestShape(
        url="https://api.openai.com/v1/chat/completions",
        auth=("authorization", "Bearer sk-test-openai-0123456789"),
        body={
            "messages": STANDARD_MESSAGES,
            "stream": True,
            "temperature": 0.2,
            "model": "gpt-4o-mini",
            "max_tokens": 64,
            "stream_options": {"include_usage": True},
        },
        passes_extra=True,
    ),
    streams={
        "text": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"kq2"}

            data: {$H,"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x"}

            data: {$H,"choices":[{"index":0,"delta":{"content":", world"},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

            $USAGE
            data: [DONE]

            """),
            [OA_META, TextDelta("Hello, world"), Finish("stop"), OA_U],
            first_token="Hello",
        ),
        "reasoning": None,  # Chat Completions streams no reasoning text (only reasoning_tokens)
        "tool_call": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

            $USAGE
            data: [DONE]

            """),
            [
                OA_META,
                call(0, "call_abc", "get_weather", '{"city":"Oslo"}'),
                Finish("tool_calls"),
                OA_U,
            ],
            first_token="get_weather",
        ),
        "parallel_tool_calls": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Oslo\"}"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\": "}}]},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"CET\"}"}}]},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}

            $USAGE
            data: [DONE]

            """),
            [
                OA_META,
                call(0, "call_1", "get_weather", '{"city": "Oslo"}'),
                call(1, "call_2", "get_time", '{"tz": "CET"}'),
                Finish("tool_calls"),
                OA_U,
            ],
        ),
        "usage": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{"content":"42"},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

            data: {$H,"choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":256,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

            data: [DONE]

            """),
            [OA_META, TextDelta("42"), Finish("stop"), Usage(2006, 300, 1920, 256, 2306)],
        ),
        "length": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"Once upon"},"logprobs":null,"finish_reason":null}]}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}

            data: [DONE]

            """),
            [OA_META, TextDelta("Once upon"), Finish("length")],
        ),
        # Azure OpenAI: a prompt_filter_results chunk (empty model) first, then a filtered finish.
        "content_filter": Stream(
            oa(r"""
            data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}

            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"I can"},"finish_reason":null,"content_filter_results":{}}]}

            data: {$H,"choices":[{"index":0,"delta":{},"finish_reason":"content_filter","content_filter_results":{"violence":{"filtered":true,"severity":"high"}}}]}

            data: [DONE]

            """),
            [OA_META, TextDelta("I can"), Finish("content_filter")],
        ),
        "midstream_error": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}

            data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}

            data: [DONE]

            """),
            [
                OA_META,
                TextDelta("Hel"),
                error(
                    502,
                    "server_error",
                    True,
                    "The server had an error while processing your request. Sorry about that!",
                ),
            ],
        ),
        "truncated": Stream(
            oa(r"""
            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":null}]}

            data: {"id":"chatcmpl-A1","object":"chat.comp"""),
            [OA_META, TextDelta("Hello"), error(502, "upstream_stream_truncated", True)],
        ),
        "prelude": Stream(
            oa(r"""
            data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}

            data: {$H,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Tz8"}

            data: {$H,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"pQ"}

            data: {$H,"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {$H,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

            data: [DONE]

            """),
            [OA_META, TextDelta("Hi"), Finish("stop")],
            first_token="Hi",
        ),
    },
    response=Stream(
        wire(r"""
        {"id":"chatcmpl-B2","object":"chat.completion","created":1731000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","refusal":null,"tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}],"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0ba0d124f1"}
        """),
        [
            OA_META,
            TextDelta("Let me check."),
            call(0, "call_abc", "get_weather", '{"city":"Oslo"}'),
            Finish("tool_calls"),
            Usage(82, 17, 64, 0, 99),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}
            """),
            expected={
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "unsupported_parameter",
            },
        ),
        HttpError(
            401,
            wire(r"""
            {"error":{"message":"Incorrect API key provided: sk-test-********************6789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}
            """),
            expected={"code": "invalid_api_key"},
        ),
        HttpError(
            429,
            wire(r"""
            {"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): Limit 200000, Used 199000, Requested 3000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}
            """),
            headers={"Retry-After": "2", "x-ratelimit-reset-tokens": "6m0s"},
            expected={"code": "rate_limit_exceeded", "retry_after_s": 2.0},
        ),
        HttpError(
            429,
            wire(r"""
            {"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}
            """),
            expected={"type": "insufficient_quota", "retryable": False},
        ),
        HttpError(
            500,
            wire(r"""
            {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}
            """),
            expected={"type": "server_error", "code": None},
        ),
        HttpError(
            503,
            b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>\n",
            headers={"content-type": "text/html"},
            expected={"message": "upstream returned HTTP 503"},
        ),
    ],
)
