"""OpenAI Chat Completions on the wire (wire-formats.md §1, reasoning as DeepSeek §5).

Stream: only `data: {json}\\n\\n` lines; role chunk, content chunks, a finish chunk
with `delta:{}`, a `choices:[]` usage chunk when `stream_options.include_usage`,
then `data: [DONE]\\n\\n`. Every chunk has the same `id` and `created`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.sim.wire import (
    JSON_CT,
    SSE_CT,
    ErrorReply,
    Reply,
    StreamRenderer,
    ToolChoice,
    ToolSpec,
    WallClock,
    WireRequest,
    content_text,
    dumps,
    is_positive_int,
    last_text_of_role,
    load_object,
    retry_after_value,
    sse,
    text_chars,
    trailing_assistant,
)

_DONE = b"data: [DONE]\n\n"
_KEEPALIVE = b": keep-alive\n\n"
_PAD = "x7Kq2ZpL9mWb4TnR8vYc1HsJ6dGf3AeU5oQiN0kBlXzMhVrPtCyEuDwSaFgIjO"
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


def _error_body(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def fingerprint(model: str) -> str:
    return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]


class OpenAIWire:
    kind = "openai"

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": f"req_{request_id}", "openai-processing-ms": "1"}

    def _reply(
        self,
        status: int,
        message: str,
        type_: str,
        request_id: str,
        param: str | None = None,
        code: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> ErrorReply:
        headers = {"content-type": JSON_CT, **self.response_headers(request_id), **(extra or {})}
        return ErrorReply(status, _error_body(message, type_, param, code), headers)

    def error(
        self,
        status: int,
        *,
        model: str = "",
        message: str = "",
        retry_after_s: float = 0.0,
        request_id: str = "",
    ) -> ErrorReply:
        if status == 401:
            return self._reply(401, _NO_KEY, "invalid_request_error", request_id)
        if status == 404:
            text = f"The model `{model}` does not exist or you do not have access to it."
            return self._reply(
                404, text, "invalid_request_error", request_id, code="model_not_found"
            )
        if status == 429:
            after = retry_after_value(retry_after_s)
            text = (
                f"Rate limit reached for {model} in organization org-sim on requests per min "
                f"(RPM): Limit 500, Used 500, Requested 1. Please try again in {after}s. Visit "
                "https://platform.openai.com/account/rate-limits to learn more."
            )
            extra = {
                "retry-after": after,
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{after}s",
            }
            return self._reply(
                429, text, "requests", request_id, code="rate_limit_exceeded", extra=extra
            )
        if status == 503:
            text = "The engine is currently overloaded, please try again later"
            return self._reply(503, text, "server_error", request_id)
        if status >= 500:
            return self._reply(status, _SERVER_ERROR, "server_error", request_id)
        return self._reply(
            status, message or "Invalid request", "invalid_request_error", request_id
        )

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return None
        return self.error(401, request_id=request_id)

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        def bad(message: str, param: str | None = None, code: str | None = None) -> ErrorReply:
            return self._reply(400, message, "invalid_request_error", request_id, param, code)

        obj = load_object(body)
        if obj is None:
            return bad(_BAD_JSON)
        model = obj.get("model")
        if not isinstance(model, str) or not model:
            return bad("you must provide a model parameter")
        messages = obj.get("messages")
        if messages is None:
            return bad(
                "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
            )
        if not isinstance(messages, list) or not messages:
            return bad(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
            )
        max_tokens = None
        for key in ("max_completion_tokens", "max_tokens"):
            value = obj.get(key)
            if value is None:
                continue
            if not is_positive_int(value):
                return bad(
                    f"Invalid '{key}': integer below minimum value. Expected a value >= 1, "
                    f"but got {value!r} instead.",
                    key,
                    "integer_below_min_value",
                )
            max_tokens = value if max_tokens is None else min(max_tokens, value)
        stream = obj.get("stream") or False
        if not isinstance(stream, bool):
            return bad(
                f"Invalid type for 'stream': expected a boolean, but got {stream!r}.",
                "stream",
                "invalid_type",
            )
        options = obj.get("stream_options")
        if options is not None and not stream:
            return bad(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        options = options if isinstance(options, Mapping) else {}
        # DeepSeek and Mistral continue a last assistant message marked `prefix: true`,
        # vLLM one sent with `continue_final_message` (and no generation prompt).
        last = trailing_assistant(messages)
        continue_from = None
        if obj.get("continue_final_message") is True:
            if obj.get("add_generation_prompt", True) is not False:
                return bad(
                    "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
                )
            if last is not None:
                continue_from = content_text(last.get("content"))
        elif last is not None and last.get("prefix") is True:
            continue_from = content_text(last.get("content"))
        return WireRequest(
            model=model,
            stream=stream,
            max_tokens=max_tokens,
            prompt_chars=text_chars(messages, obj.get("tools")),
            last_user_text=last_text_of_role(messages, "user"),
            tools=_tools(obj.get("tools")),
            tool_choice=_tool_choice(obj.get("tool_choice")),
            include_usage=options.get("include_usage") is True,
            obfuscation=options.get("include_obfuscation") is not False,
            continue_from=continue_from,
        )

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer:
        return OpenAIStream(req, reply)

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        data = [
            {"id": n, "object": "model", "created": int(created), "owned_by": "sim"} for n in names
        ]
        return dumps({"object": "list", "data": data})


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(raw, list):
        return ()
    specs = []
    for tool in raw:
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            specs.append(ToolSpec(fn["name"], params if isinstance(params, Mapping) else {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    if raw in ("none", "auto", "required"):
        return ToolChoice(raw)
    if isinstance(raw, Mapping):
        fn = raw.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return ToolChoice("named", fn["name"])
    return ToolChoice()


def _usage(reply: Reply) -> dict[str, Any]:
    p, c = reply.prompt_tokens, reply.completion_tokens
    return {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(reply: Reply) -> str:
    if reply.finish == "tool_calls" and reply.named_tool:
        return "stop"
    return reply.finish


class OpenAIStream:
    content_type = SSE_CT
    body_content_type = JSON_CT

    def __init__(self, req: WireRequest, reply: Reply) -> None:
        self._req = req
        self._reply = reply
        self._base: dict[str, Any] = {
            "id": f"chatcmpl-{reply.id_seed}",
            "object": "chat.completion.chunk",
            "created": int(reply.created),
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": fingerprint(reply.model),
        }
        self._deltas = self._token_deltas()

    def _token_deltas(self) -> list[dict[str, Any]]:
        reply = self._reply
        deltas: list[dict[str, Any]] = []
        for piece in reply.reasoning:
            deltas.append({"content": None, "reasoning_content": piece})
        for piece in reply.text:
            if reply.reasoning:
                deltas.append({"content": piece, "reasoning_content": None})
            else:
                deltas.append({"content": piece})
        call = reply.tool_call
        if call is not None:
            first: dict[str, Any] = {
                "index": 0,
                "id": f"call_{call.id_seed}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            if deltas:
                deltas.append({"tool_calls": [first]})
            else:  # a reply that starts with a tool call carries the role in its first chunk
                deltas.append(
                    {"role": "assistant", "content": None, "tool_calls": [first], "refusal": None}
                )
            for frag in call.fragments:
                deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]})
        return deltas

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = dict(self._base)
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._req.include_usage:
            chunk["usage"] = None
        if self._req.obfuscation:
            size = len(str(delta.get("content") or ""))
            chunk["obfuscation"] = _PAD[(size * 7) % 20 : (size * 7) % 20 + max(2, 16 - size)]
        return sse(chunk)

    def prelude(self) -> bytes:
        reply = self._reply
        if reply.reasoning:
            return self._chunk({"role": "assistant", "content": None, "reasoning_content": ""})
        if reply.text:
            return self._chunk({"role": "assistant", "content": "", "refusal": None})
        return b""  # tool call first: the role rides on the first tool-call chunk

    def token_count(self) -> int:
        return len(self._deltas)

    def token(self, i: int) -> bytes:
        return self._chunk(self._deltas[i])

    def finish(self) -> bytes:
        out = self._chunk({}, _finish_reason(self._reply))
        if self._req.include_usage:
            chunk = dict(self._base)
            chunk["choices"] = []
            chunk["usage"] = _usage(self._reply)
            if self._req.obfuscation:
                chunk["obfuscation"] = _PAD[:8]
            out += sse(chunk)
        return out + _DONE

    def keepalive(self) -> bytes:
        return _KEEPALIVE

    def midstream_error(self) -> bytes:
        return (
            _error_body(_SERVER_ERROR, "server_error", None, None).join((b"data: ", b"\n\n"))
            + _DONE
        )

    def body_keepalive(self) -> bytes:
        return b"\n"  # DeepSeek-style blank lines ahead of a slow JSON body

    def body(self) -> bytes:
        reply = self._reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.text) if reply.text or reply.tool_call is None else None,
        }
        if reply.reasoning:
            message["reasoning_content"] = "".join(reply.reasoning)
        if reply.tool_call is not None:
            call = reply.tool_call
            message["tool_calls"] = [
                {
                    "id": f"call_{call.id_seed}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
            ]
        message["refusal"] = None
        message["annotations"] = []
        return dumps(
            {
                "id": self._base["id"],
                "object": "chat.completion",
                "created": self._base["created"],
                "model": reply.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": _finish_reason(reply),
                    }
                ],
                "usage": _usage(reply),
                "service_tier": "default",
                "system_fingerprint": self._base["system_fingerprint"],
            }
        )
