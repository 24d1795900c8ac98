"""Ollama native `/api/chat` on the wire (wire-formats.md §6).

NDJSON (`application/x-ndjson`), one object per line; streaming is the default.
The last line has `done:true`, `done_reason` and the metrics (nanoseconds).
Errors are `{"error": "<string>"}`; no auth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.sim.wire import (
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
    text_chars,
    trailing_assistant,
)

JSON_UTF8 = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
_MESSAGES = {
    429: "too many requests, please try again later",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OllamaWire:
    kind = "ollama"

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
        if status == 404 and not message:
            message = f'model "{model}" not found, try pulling it first'
        text = message or _MESSAGES.get(status, "unexpected server status")
        return ErrorReply(status, dumps({"error": text}), {"content-type": JSON_UTF8})

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        return None  # a local Ollama has no auth

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        obj = load_object(body)
        if obj is None:
            return self.error(400, message="invalid character looking for beginning of value")
        model = obj.get("model")
        if not isinstance(model, str) or not model:
            return self.error(400, message="model is required")
        stream = obj.get("stream", True)
        if not isinstance(stream, bool):
            return self.error(
                400,
                message="json: cannot unmarshal into Go struct field "
                "ChatRequest.stream of type bool",
            )
        options = obj.get("options")
        options = options if isinstance(options, Mapping) else {}
        num_predict = options.get("num_predict")
        messages = obj.get("messages")
        last = trailing_assistant(messages)  # the chat template leaves it open: continued
        return WireRequest(
            model=model,
            stream=stream,
            continue_from=content_text(last.get("content")) if last is not None else None,
            max_tokens=num_predict if is_positive_int(num_predict) else None,
            prompt_chars=text_chars(messages, obj.get("tools")),
            last_user_text=last_text_of_role(messages, "user"),
            tools=_tools(obj.get("tools")),
            tool_choice=ToolChoice(),
        )

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer:
        return OllamaStream(reply, clock)

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        models = [
            {
                "name": n,
                "model": n,
                "modified_at": rfc3339(created),
                "size": 1,
                "digest": "sim",
                "details": {"format": "gguf", "family": "sim"},
            }
            for n in names
        ]
        return dumps({"models": models})


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    for tool in raw if isinstance(raw, list) else ():
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            specs.append(ToolSpec(fn["name"], params if isinstance(params, Mapping) else {}))
    return tuple(specs)


class OllamaStream:
    content_type = NDJSON
    body_content_type = JSON_UTF8

    def __init__(self, reply: Reply, clock: WallClock) -> None:
        self._reply = reply
        self._clock = clock
        self._start = reply.created
        self._first: float | None = None
        self._messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": p} for p in reply.reasoning
        ]
        self._messages.extend({"role": "assistant", "content": p} for p in reply.text)
        if reply.tool_call is not None:
            self._messages.append(
                {"role": "assistant", "content": "", "tool_calls": [self._call()]}
            )

    def _call(self) -> dict[str, Any]:
        call = self._reply.tool_call
        assert call is not None
        fn = {"index": 0, "name": call.name, "arguments": dict(call.arguments)}
        return {"id": f"call_{call.id_seed[:8].lower()}", "function": fn}

    def _line(self, obj: Mapping[str, Any]) -> bytes:
        return dumps(obj) + b"\n"

    def _done(self, message: dict[str, Any]) -> dict[str, Any]:
        now = self._clock()
        first = self._first if self._first is not None else now
        reply = self._reply
        return {
            "model": reply.model,
            "created_at": rfc3339(now),
            "message": message,
            "done_reason": "length" if reply.finish == "length" else "stop",
            "done": True,
            "total_duration": int((now - self._start) * 1e9),
            "load_duration": 1_000_000,
            "prompt_eval_count": reply.prompt_tokens,
            "prompt_eval_duration": int(max(0.0, first - self._start) * 1e9),
            "eval_count": reply.completion_tokens,
            "eval_duration": int(max(0.0, now - first) * 1e9),
        }

    def prelude(self) -> bytes:
        return b""

    def token_count(self) -> int:
        return len(self._messages)

    def token(self, i: int) -> bytes:
        now = self._clock()
        if self._first is None:
            self._first = now
        obj = {
            "model": self._reply.model,
            "created_at": rfc3339(now),
            "message": self._messages[i],
            "done": False,
        }
        return self._line(obj)

    def finish(self) -> bytes:
        return self._line(self._done({"role": "assistant", "content": ""}))

    def keepalive(self) -> bytes:
        return b""

    def midstream_error(self) -> bytes:
        return self._line(
            {"error": "an error was encountered while running the model: unexpected EOF"}
        )

    def body_keepalive(self) -> bytes:
        return b""

    def body(self) -> bytes:
        reply = self._reply
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text)}
        if reply.reasoning:
            message["thinking"] = "".join(reply.reasoning)
        if reply.tool_call is not None:
            message["tool_calls"] = [self._call()]
        return dumps(self._done(message))
