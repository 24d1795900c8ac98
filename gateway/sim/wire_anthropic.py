"""Anthropic Messages API on the wire (wire-formats.md §2).

Every event has an `event:` line and a `data:` JSON whose `type` equals it:
message_start, then per content block (thinking, text, tool_use; indexes 0, 1, 2
in order) content_block_start / deltas / content_block_stop, then message_delta
and message_stop. No [DONE].
"""

from __future__ import annotations

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
    sse_event,
    text_chars,
    trailing_assistant,
)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_MESSAGES = {
    401: "x-api-key header is required",
    429: (
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
    ),
    500: "Internal server error",
    503: "Service unavailable",
    529: "Overloaded",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_PING = sse_event("ping", {"type": "ping"})
_KEEPALIVE = b": keep-alive\n\n"


class AnthropicWire:
    kind = "anthropic"

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": f"req_011C{request_id}"}

    def error(
        self,
        status: int,
        *,
        model: str = "",
        message: str = "",
        retry_after_s: float = 0.0,
        request_id: str = "",
    ) -> ErrorReply:
        type_ = _TYPES.get(status, "api_error")
        if status == 404:
            text = f"model: {model}"
        else:
            text = message or _MESSAGES.get(status, "Invalid request")
        headers = {"content-type": JSON_CT, **self.response_headers(request_id)}
        if status == 429:
            headers["retry-after"] = retry_after_value(retry_after_s)
            headers["anthropic-ratelimit-requests-limit"] = "50"
            headers["anthropic-ratelimit-requests-remaining"] = "0"
        if status == 529:
            headers["x-should-retry"] = "true"
        body = {
            "type": "error",
            "error": {"type": type_, "message": text},
            "request_id": self.response_headers(request_id)["request-id"],
        }
        return ErrorReply(status, dumps(body), headers)

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if not headers.get("x-api-key") and not (scheme.lower() == "bearer" and token.strip()):
            return self.error(401, request_id=request_id)
        if not headers.get("anthropic-version"):
            return self.error(
                400, message="anthropic-version: header is required", request_id=request_id
            )
        return None

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        def bad(message: str) -> ErrorReply:
            return self.error(400, message=message, request_id=request_id)

        obj = load_object(body)
        if obj is None:
            return bad("There was an issue with the format of your request: invalid JSON body")
        model = obj.get("model")
        if not isinstance(model, str) or not model:
            return bad("model: Field required")
        if "max_tokens" not in obj:
            return bad("max_tokens: Field required")
        if not is_positive_int(obj["max_tokens"]):
            return bad("max_tokens: Input should be greater than or equal to 1")
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            return bad(
                "messages: Field required"
                if messages is None
                else "messages: at least one message is required"
            )
        stream = obj.get("stream") or False
        if not isinstance(stream, bool):
            return bad("stream: Input should be a valid boolean")
        last = trailing_assistant(messages)  # prefill: the answer goes on from it
        continue_from = content_text(last.get("content")) if last is not None else None
        if continue_from is not None and continue_from != continue_from.rstrip():
            return bad("messages: final assistant content cannot end with trailing whitespace")
        return WireRequest(
            model=model,
            stream=stream,
            continue_from=continue_from,
            max_tokens=obj["max_tokens"],
            prompt_chars=text_chars(obj.get("system"), messages, obj.get("tools")),
            last_user_text=last_text_of_role(messages, "user"),
            tools=_tools(obj.get("tools")),
            tool_choice=_tool_choice(obj.get("tool_choice")),
        )

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer:
        return AnthropicStream(reply)

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        data = [
            {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
            for n in names
        ]
        ids = [d["id"] for d in data]
        return dumps(
            {
                "data": data,
                "has_more": False,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
        )


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(raw, list):
        return ()
    specs: list[ToolSpec] = []
    for tool in raw:
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
            schema = tool.get("input_schema")
            specs.append(ToolSpec(tool["name"], schema if isinstance(schema, Mapping) else {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    if not isinstance(raw, Mapping):
        return ToolChoice()
    kind = raw.get("type")
    if kind == "any":
        return ToolChoice("required")
    if kind == "none":
        return ToolChoice("none")
    if kind == "tool" and isinstance(raw.get("name"), str):
        return ToolChoice("named", raw["name"])
    return ToolChoice()


def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


class AnthropicStream:
    content_type = SSE_CT
    body_content_type = JSON_CT

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._msg_id = f"msg_01{reply.id_seed[:22]}"
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []  # (start, deltas)
        start: dict[str, Any]
        if reply.reasoning:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in reply.reasoning]
            blocks.append((start, deltas))
        if reply.text:
            deltas = [{"type": "text_delta", "text": p} for p in reply.text]
            blocks.append(({"type": "text", "text": ""}, deltas))
        call = reply.tool_call
        if call is not None:
            start = {
                "type": "tool_use",
                "id": f"toolu_01{call.id_seed[:22]}",
                "name": call.name,
                "input": {},
            }
            frags = ["", *call.fragments]
            blocks.append((start, [{"type": "input_json_delta", "partial_json": f} for f in frags]))
        self._blocks = blocks
        self._tokens = self._render_tokens()

    def _start(self, index: int) -> bytes:
        start = self._blocks[index][0]
        return sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )

    def _stop(self, index: int) -> bytes:
        out = b""
        if self._blocks[index][0]["type"] == "thinking":
            sig = {"type": "signature_delta", "signature": f"Eu{self._reply.id_seed}sim=="}
            out = _delta(index, sig)
        return out + sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _first_in_prelude(self) -> bool:
        return self._blocks[0][0]["type"] != "tool_use"

    def _render_tokens(self) -> list[bytes]:
        tokens: list[bytes] = []
        for index, (_, deltas) in enumerate(self._blocks):
            head = b""
            if index > 0:
                head = self._stop(index - 1) + self._start(index)
            elif not self._first_in_prelude():
                head = self._start(0)
            # for tool_use, deltas[0] is the empty input_json_delta: with the block start
            # (which names the tool) it forms the first token frame
            for j, delta in enumerate(deltas):
                tokens.append((head if j == 0 else b"") + _delta(index, delta))
        return tokens

    def prelude(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._msg_id,
            "type": "message",
            "role": "assistant",
            "model": self._reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**_usage(self._reply, 1), "service_tier": "standard"},
        }
        out = sse_event("message_start", {"type": "message_start", "message": message})
        if self._first_in_prelude():
            out += self._start(0) + _PING
        return out

    def token_count(self) -> int:
        return len(self._tokens)

    def token(self, i: int) -> bytes:
        return self._tokens[i]

    def finish(self) -> bytes:
        delta = {"stop_reason": _STOP[self._reply.finish], "stop_sequence": None}
        return (
            self._stop(len(self._blocks) - 1)
            + sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": _usage(self._reply, self._reply.completion_tokens),
                },
            )
            + sse_event("message_stop", {"type": "message_stop"})
        )

    def keepalive(self) -> bytes:
        return _KEEPALIVE

    def midstream_error(self) -> bytes:
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return sse_event("error", {"type": "error", "error": error})

    def body_keepalive(self) -> bytes:
        return b""

    def body(self) -> bytes:
        reply = self._reply
        content: list[dict[str, Any]] = []
        for start, _ in self._blocks:
            kind = start["type"]
            if kind == "thinking":
                signature = f"Eu{reply.id_seed}sim=="
                content.append(
                    {
                        "type": "thinking",
                        "thinking": "".join(reply.reasoning),
                        "signature": signature,
                    }
                )
            elif kind == "text":
                content.append({"type": "text", "text": "".join(reply.text)})
            elif reply.tool_call is not None:
                content.append({**start, "input": dict(reply.tool_call.arguments)})
        return dumps(
            {
                "id": self._msg_id,
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": content,
                "stop_reason": _STOP[reply.finish],
                "stop_sequence": None,
                "usage": {**_usage(reply, reply.completion_tokens), "service_tier": "standard"},
            }
        )


def _delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return sse_event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )
