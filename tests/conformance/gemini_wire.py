"""Conformance case for kind `gemini` (../shared/wire-formats.md §3, `alt=sse`).

Written by hand in the shape of vercel/ai's recorded google-*.chunks.txt: `data: `
lines only, usageMetadata on every chunk (cumulative), CRLF framing in some
streams (as real traffic is reported to use), no terminator but a finishReason.
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

KEY = "AIzaSyTest-0123456789abcdef"
META = ResponseMeta("gemini-2.5-flash")
TAIL = '"modelVersion":"gemini-2.5-flash","responseId":"mKhHaOvXA8-Wz7IP2K3C6Qg"'


def gm(text: str, newline: str = "\n") -> bytes:
    return wire(text, newline, T=TAIL)


CASE = AdapterCase(
    id="gemini",
    settings=ProviderSettings("google", "gemini", "https://generativelanguage.googleapis.com", KEY),
    target=TargetModel("gemini-2.5-flash"),
    request=RequestShape(
        url=(
            "https://generativelanguage.googleapis.com/v1beta/models/"
            "gemini-2.5-flash:streamGenerateContent?alt=sse"
        ),
        auth=("x-goog-api-key", KEY),
        body={
            "contents": [{"role": "user", "parts": [{"text": "Weather in Oslo?"}]}],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64},
        },
        absent=("model", "messages", "stream", "temperature", "max_tokens"),
        headers={"accept": "text/event-stream"},
    ),
    streams={
        "text": Stream(
            gm(
                r"""
                data: {"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":10,"promptTokensDetails":[{"modality":"TEXT","tokenCount":9}]},$T}

                data: {"candidates":[{"content":{"parts":[{"text":", world"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":3,"totalTokenCount":12,"promptTokensDetails":[{"modality":"TEXT","tokenCount":9}]},$T}

                """,
                "\r\n",
            ),
            [
                META,
                TextDelta("Hello"),
                Usage(9, 1, 0, 0, 10),
                TextDelta(", world"),
                Usage(9, 3, 0, 0, 12),
                Finish("stop"),
            ],
            first_token="Hello",
        ),
        # Thought summaries (includeThoughts) are parts with "thought": true.
        "reasoning": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"Checking the weather in Oslo.","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"totalTokenCount":40,"thoughtsTokenCount":31},$T}

            data: {"candidates":[{"content":{"parts":[{"text":"Cold.","thoughtSignature":"CiQB0e2Kb1bTqmq"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"totalTokenCount":42,"thoughtsTokenCount":31},$T}

            """),
            [
                META,
                ReasoningDelta("Checking the weather in Oslo."),
                Usage(9, 31, 0, 31, 40),
                TextDelta("Cold."),
                Usage(9, 33, 0, 31, 42),
                Finish("stop"),
            ],
            first_token="Checking the weather in Oslo.",
        ),
        # A function call arrives whole (args an object, no id); finishReason stays STOP.
        "tool_call": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Oslo"}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":5,"totalTokenCount":45},$T}

            """),
            [
                META,
                call(0, "call_mKhHaOvXA8-Wz7IP2K3C6Qg_0", "get_weather", '{"city":"Oslo"}'),
                Usage(40, 5, 0, 0, 45),
                Finish("tool_calls"),
            ],
            first_token="get_weather",
        ),
        "parallel_tool_calls": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Oslo"}}},{"functionCall":{"name":"get_time","args":{}}}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":9,"totalTokenCount":49},$T}

            data: {"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":9,"totalTokenCount":49},$T}

            """),
            [
                META,
                call(0, "call_mKhHaOvXA8-Wz7IP2K3C6Qg_0", "get_weather", '{"city":"Oslo"}'),
                call(1, "call_mKhHaOvXA8-Wz7IP2K3C6Qg_1", "get_time", "{}"),
                Usage(40, 9, 0, 0, 49),
                Finish("tool_calls"),
            ],
        ),
        # completion = candidates + thoughts; cached from cachedContentTokenCount.
        "usage": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"42"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":2006,"candidatesTokenCount":44,"totalTokenCount":2306,"cachedContentTokenCount":1920,"thoughtsTokenCount":256,"promptTokensDetails":[{"modality":"TEXT","tokenCount":2006}],"cacheTokensDetails":[{"modality":"TEXT","tokenCount":1920}]},$T}

            """),
            [META, TextDelta("42"), Usage(2006, 300, 1920, 256, 2306), Finish("stop")],
        ),
        "length": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"Once upon"}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":64,"totalTokenCount":73},$T}

            """),
            [META, TextDelta("Once upon"), Usage(9, 64, 0, 0, 73), Finish("length")],
        ),
        "content_filter": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"I can"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"totalTokenCount":11},$T}

            data: {"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"totalTokenCount":11},$T}

            """),
            [META, TextDelta("I can"), Usage(9, 2, 0, 0, 11), Finish("content_filter")],
        ),
        "midstream_error": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":10},$T}

            data: {"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}

            """),
            [
                META,
                TextDelta("Hel"),
                Usage(9, 1, 0, 0, 10),
                error(
                    503,
                    "api_error",
                    True,
                    "The model is overloaded. Please try again later.",
                    code="UNAVAILABLE",
                ),
            ],
        ),
        "truncated": Stream(
            gm(r"""
            data: {"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":10},$T}

            data: {"candidates":[{"content":{"parts":[{"text":", wor"""),
            [
                META,
                TextDelta("Hello"),
                Usage(9, 1, 0, 0, 10),
                error(502, "upstream_stream_truncated", True),
            ],
        ),
        # Gemini 3: an empty text part that only carries a thoughtSignature is not a token.
        "prelude": Stream(
            gm(
                r"""
                data: {"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"EpYECpMEAcu98PBqY"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},$T}

                data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":10},$T}

                """,
                "\r\n",
            ),
            [META, Usage(9, 0, 0, 0, 9), TextDelta("Hi"), Usage(9, 1, 0, 0, 10), Finish("stop")],
            first_token="Hi",
        ),
    },
    response=Stream(
        wire(r"""
        {"candidates":[{"content":{"parts":[{"text":"Let me check."},{"functionCall":{"name":"get_weather","args":{"city":"Oslo"}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":82,"candidatesTokenCount":17,"totalTokenCount":99,"cachedContentTokenCount":64},"modelVersion":"gemini-2.5-flash","responseId":"r-B2"}
        """),
        [
            META,
            TextDelta("Let me check."),
            call(0, "call_r-B2_0", "get_weather", '{"city":"Oslo"}'),
            Usage(82, 17, 64, 0, 99),
            Finish("tool_calls"),
        ],
    ),
    errors=[
        HttpError(
            400,
            wire(r"""
            {"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"foo\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"description":"Invalid JSON payload received. Unknown name \"foo\": Cannot find field."}]}]}}
            """),
            expected={"type": "invalid_request_error", "code": "INVALID_ARGUMENT"},
        ),
        HttpError(
            401,
            wire(r"""
            {"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}
            """),
            expected={"type": "authentication_error", "code": "UNAUTHENTICATED"},
        ),
        HttpError(
            429,
            wire(r"""
            {"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"10"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34.4s"}]}}
            """),
            expected={"code": "RESOURCE_EXHAUSTED", "retry_after_s": 34.4},
        ),
        # Without RetryInfo (e.g. behind a proxy) a retry-after header is honoured.
        HttpError(
            429,
            wire(r"""
            {"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}
            """),
            headers={"Retry-After": "20"},
            expected={"type": "rate_limit_error", "retry_after_s": 20.0},
        ),
        HttpError(
            500,
            wire(r"""
            {"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}
            """),
            expected={"type": "api_error", "code": "INTERNAL"},
        ),
        HttpError(
            503,
            wire(r"""
            {"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}
            """),
            expected={"code": "UNAVAILABLE"},
        ),
    ],
)
