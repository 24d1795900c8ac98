"""Google Gemini generateContent / streamGenerateContent on the wire (wire-formats.md §3).

With `alt=sse`: only `data: {json}\\r\\n\\r\\n` events (CRLF framing, the space after
the colon), no comments, no [DONE]; `usageMetadata` (cumulative) on every chunk;
the last chunk carries `finishReason`. Without `alt=sse` the chunks form one JSON
array streamed piece by piece. Errors are Google RPC errors, pretty-printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.sim.wire import (
    ErrorReply,
    Reply,
    StreamRenderer,
    ToolChoice,
    ToolSpec,
    WallClock,
    WireRequest,
    dumps,
    last_text_of_role,
    load_object,
    text_chars,
)

JSON_UTF8 = "application/json; charset=UTF-8"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    403: (
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."
    ),
    429: (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    ),
    500: (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    ),
    503: "The model is overloaded. Please try again later.",
}
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_requests"
_METHODS = ("generateContent", "streamGenerateContent")


def _error_obj(status: int, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS.get(status, "UNKNOWN"),
    }
    if details:
        err["details"] = details
    return {"error": err}


class GeminiWire:
    kind = "gemini"

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {}

    def error(
        self,
        status: int,
        *,
        model: str = "",
        message: str = "",
        retry_after_s: float = 0.0,
        request_id: str = "",
    ) -> ErrorReply:
        details: list[Any] = []
        if status == 404 and not message:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their "
                "supported methods."
            )
        if status == 429:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": _QUOTA_METRIC,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "15",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after_s:g}s",
                },
            ]
        text = message or _MESSAGES.get(status, "Request contains an invalid argument.")
        body = orjson.dumps(_error_obj(status, text, details), option=orjson.OPT_INDENT_2) + b"\n"
        return ErrorReply(status, body, {"content-type": JSON_UTF8})

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        if headers.get("x-goog-api-key") or query.get("key"):
            return None
        return self.error(403)

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        model, _, method = (target or "").rpartition(":")
        if not model or method not in _METHODS:
            return self.error(404, message="Method not found.")
        obj = load_object(body)
        if obj is None:
            return self.error(400, message="Invalid JSON payload received. Unexpected token.")
        contents = obj.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.error(
                400, message="* GenerateContentRequest.contents: contents is not specified\n"
            )
        config = obj.get("generationConfig")
        config = config if isinstance(config, Mapping) else {}
        max_tokens = config.get("maxOutputTokens")
        if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens >= 1):
            return self.error(
                400,
                message="* GenerateContentRequest.generation_config.max_output_tokens: "
                "max_output_tokens must be positive.\n",
            )
        return WireRequest(
            model=model.removeprefix("models/"),
            stream=method == "streamGenerateContent",
            max_tokens=max_tokens,
            prompt_chars=text_chars(obj.get("systemInstruction"), contents, obj.get("tools")),
            last_user_text=last_text_of_role(contents, "user", key="parts"),
            tools=_tools(obj.get("tools")),
            tool_choice=_tool_choice(obj.get("toolConfig")),
            sse=query.get("alt") == "sse",
        )

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer:
        return GeminiStream(req, reply)

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        models = [
            {
                "name": f"models/{n}",
                "version": "001",
                "displayName": n,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for n in names
        ]
        return dumps({"models": models})


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    for tool in raw if isinstance(raw, list) else ():
        decls = tool.get("functionDeclarations") if isinstance(tool, Mapping) else None
        for decl in decls if isinstance(decls, list) else ():
            if isinstance(decl, Mapping) and isinstance(decl.get("name"), str):
                params = decl.get("parameters") or decl.get("parametersJsonSchema")
                specs.append(ToolSpec(decl["name"], params if isinstance(params, Mapping) else {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    config = raw.get("functionCallingConfig") if isinstance(raw, Mapping) else None
    if not isinstance(config, Mapping):
        return ToolChoice()
    mode = config.get("mode")
    if mode == "NONE":
        return ToolChoice("none")
    if mode == "ANY":
        names = config.get("allowedFunctionNames")
        if isinstance(names, list) and len(names) == 1 and isinstance(names[0], str):
            return ToolChoice("named", names[0])
        return ToolChoice("required")
    return ToolChoice()


class GeminiStream:
    body_content_type = JSON_UTF8

    def __init__(self, req: WireRequest, reply: Reply) -> None:
        self._reply = reply
        self._sse = req.sse
        self.content_type = "text/event-stream" if req.sse else JSON_UTF8
        self._opened = False
        self._parts: list[dict[str, Any]] = [{"text": p, "thought": True} for p in reply.reasoning]
        self._parts.extend({"text": p} for p in reply.text)
        if reply.tool_call is not None:
            call = reply.tool_call
            self._parts.append({"functionCall": {"name": call.name, "args": dict(call.arguments)}})

    def _usage(self, upto: int | None) -> dict[str, Any]:
        reply = self._reply
        thoughts = reply.reasoning_tokens
        candidates = reply.completion_tokens - thoughts
        if upto is not None:  # cumulative up to token frame `upto` (inclusive)
            thoughts = min(upto + 1, thoughts)
            if upto < len(reply.reasoning) + len(reply.text):
                candidates = max(0, upto + 1 - reply.reasoning_tokens)
        usage: dict[str, Any] = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": reply.prompt_tokens + candidates + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        return usage

    def _chunk(
        self, parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self._reply.model,
            "responseId": self._reply.id_seed[:22],
        }

    def _frame(self, obj: Mapping[str, Any]) -> bytes:
        if self._sse:
            return b"data: " + dumps(obj) + b"\r\n\r\n"
        head = b",\r\n" if self._opened else b"["
        self._opened = True
        return head + dumps(obj)

    def _finish_reason(self) -> str:
        return "MAX_TOKENS" if self._reply.finish == "length" else "STOP"

    def prelude(self) -> bytes:
        return b""  # Gemini sends nothing before the first chunk

    def token_count(self) -> int:
        return len(self._parts)

    def token(self, i: int) -> bytes:
        return self._frame(self._chunk([self._parts[i]], self._usage(i), None))

    def finish(self) -> bytes:
        out = self._frame(self._chunk([{"text": ""}], self._usage(None), self._finish_reason()))
        return out if self._sse else out + b"]"

    def keepalive(self) -> bytes:
        return b""  # python-genai fails on anything but `data: ` lines

    def midstream_error(self) -> bytes:
        out = self._frame(_error_obj(500, _MESSAGES[500]))
        return out if self._sse else out + b"]"

    def body_keepalive(self) -> bytes:
        return b""

    def body(self) -> bytes:
        reply = self._reply
        parts: list[dict[str, Any]] = []
        if reply.reasoning:
            parts.append({"text": "".join(reply.reasoning), "thought": True})
        if reply.text:
            parts.append({"text": "".join(reply.text)})
        if reply.tool_call is not None:
            parts.append(self._parts[-1])
        return dumps(self._chunk(parts, self._usage(None), self._finish_reason()))
