"""OpenAI's Responses API on the wire (`POST /v1/responses`), for the OpenAI simulator.

The gateway never calls it (its Responses door maps onto chat upstream); it is here so a
simulated OpenAI answers what the real one does, for demos and clients pointed straight
at the simulator. Kept small: function tools, text, a reasoning item (no summary text,
as the real API without `reasoning.summary`), usage, typed SSE events with
`sequence_number`, `response.failed` for an in-stream error.
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
    dumps,
    is_positive_int,
    load_object,
    sse_event,
    text_chars,
)
from gateway.sim.wire_openai import OpenAIWire


class ResponsesWire:
    kind = "openai"

    def __init__(self) -> None:
        self._openai = OpenAIWire()

    def response_headers(self, request_id: str) -> dict[str, str]:
        return self._openai.response_headers(request_id)

    def error(
        self,
        status: int,
        *,
        model: str = "",
        message: str = "",
        retry_after_s: float = 0.0,
        request_id: str = "",
    ) -> ErrorReply:
        return self._openai.error(
            status, model=model, message=message, retry_after_s=retry_after_s, request_id=request_id
        )

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        return self._openai.check_auth(headers, query, request_id)

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        return self._openai.models_body(names, created)

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        def bad(message: str) -> ErrorReply:
            return self.error(400, message=message, request_id=request_id)

        obj = load_object(body)
        if obj is None:
            return bad("We could not parse the JSON body of your request.")
        model = obj.get("model")
        if not isinstance(model, str) or not model:
            return bad("Missing required parameter: 'model'.")
        items = obj.get("input")
        if not isinstance(items, str | list):
            return bad("Missing required parameter: 'input'.")
        limit = obj.get("max_output_tokens")
        if limit is not None and not is_positive_int(limit):
            return bad("Invalid 'max_output_tokens': expected an integer >= 1.")
        stream = obj.get("stream") or False
        if not isinstance(stream, bool):
            return bad("Invalid type for 'stream': expected a boolean.")
        return WireRequest(
            model=model,
            stream=stream,
            max_tokens=limit,
            prompt_chars=text_chars(items, obj.get("instructions"), obj.get("tools")),
            last_user_text=_last_user_text(items),
            tools=_tools(obj.get("tools")),
            tool_choice=_tool_choice(obj.get("tool_choice")),
        )

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer:
        return ResponsesStream(req, reply)


def _last_user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items):
        if isinstance(item, Mapping) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p["text"]
                    for p in content
                    if isinstance(p, Mapping) and isinstance(p.get("text"), str)
                )
    return ""


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    specs = []
    for tool in raw if isinstance(raw, list) else ():
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
            params = tool.get("parameters")
            specs.append(ToolSpec(tool["name"], params if isinstance(params, Mapping) else {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    if raw in ("none", "auto", "required"):
        return ToolChoice(raw)
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        return ToolChoice("named", raw["name"])
    return ToolChoice()


class ResponsesStream:
    """Frames in call order: prelude (created, in_progress), one frame per token (the
    first opens the items), finish (the done events, completed / incomplete)."""

    content_type = SSE_CT
    body_content_type = JSON_CT

    def __init__(self, req: WireRequest, reply: Reply) -> None:
        self._reply = reply
        self._seq = 0
        rid = reply.id_seed
        self._id = f"resp_{rid}"
        self._ids = {"rs": f"rs_{rid}", "msg": f"msg_{rid}", "fc": f"fc_{rid}"}
        call = reply.tool_call
        self._pieces = call.fragments if call is not None else reply.text
        self._reasoning = 1 if reply.reasoning else 0  # output index of the answer item

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, **payload, "sequence_number": self._seq}
        self._seq += 1
        return sse_event(kind, payload)

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        reply = self._reply
        incomplete = status == "incomplete"
        return {
            "id": self._id,
            "object": "response",
            "created_at": int(reply.created),
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "model": reply.model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": None if status == "in_progress" else self._usage(),
        }

    def _usage(self) -> dict[str, Any]:
        reply = self._reply
        return {
            "input_tokens": reply.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": reply.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }

    def _items(self, status: str) -> list[dict[str, Any]]:
        reply = self._reply
        items: list[dict[str, Any]] = []
        if reply.reasoning:
            items.append({"id": self._ids["rs"], "type": "reasoning", "summary": []})
        call = reply.tool_call
        if call is not None:
            arguments = call.arguments_json if status != "in_progress" else ""
            items.append(
                {
                    "id": self._ids["fc"],
                    "type": "function_call",
                    "status": status,
                    "call_id": f"call_{call.id_seed}",
                    "name": call.name,
                    "arguments": arguments,
                }
            )
        else:
            text = "".join(reply.text) if status != "in_progress" else None
            content = [] if text is None else [_text_part(text)]
            items.append(
                {
                    "id": self._ids["msg"],
                    "type": "message",
                    "status": status,
                    "role": "assistant",
                    "content": content,
                }
            )
        return items

    def _status(self) -> str:
        return "incomplete" if self._reply.finish == "length" else "completed"

    def prelude(self) -> bytes:
        snapshot = {"response": self._response("in_progress", [])}
        return self._event("response.created", snapshot) + self._event(
            "response.in_progress", {"response": self._response("in_progress", [])}
        )

    def token_count(self) -> int:
        return max(1, len(self._pieces))

    def token(self, i: int) -> bytes:
        out = b""
        answer = self._items("in_progress")[-1]
        where = {"item_id": answer["id"], "output_index": self._reasoning}
        if i == 0:
            if self._reasoning:
                item = self._items("completed")[0]
                out += self._event("response.output_item.added", {"output_index": 0, "item": item})
                out += self._event("response.output_item.done", {"output_index": 0, "item": item})
            out += self._event(
                "response.output_item.added", {"output_index": self._reasoning, "item": answer}
            )
            if answer["type"] == "message":
                out += self._event(
                    "response.content_part.added",
                    {**where, "content_index": 0, "part": _text_part("")},
                )
        if i >= len(self._pieces):
            return out
        if answer["type"] == "message":
            delta = {**where, "content_index": 0, "delta": self._pieces[i], "logprobs": []}
            return out + self._event("response.output_text.delta", delta)
        delta = {**where, "delta": self._pieces[i]}
        return out + self._event("response.function_call_arguments.delta", delta)

    def finish(self) -> bytes:
        status = self._status()
        answer = self._items(status)[-1]
        where = {"item_id": answer["id"], "output_index": self._reasoning}
        if answer["type"] == "message":
            text = answer["content"][0]["text"]
            out = self._event(
                "response.output_text.done",
                {**where, "content_index": 0, "text": text, "logprobs": []},
            )
            out += self._event(
                "response.content_part.done",
                {**where, "content_index": 0, "part": _text_part(text)},
            )
        else:
            out = self._event(
                "response.function_call_arguments.done", {**where, "arguments": answer["arguments"]}
            )
        out += self._event(
            "response.output_item.done", {"output_index": self._reasoning, "item": answer}
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": self._response(status, self._items(status))})

    def keepalive(self) -> bytes:
        return b""  # the Responses stream has no keep-alive comments

    def midstream_error(self) -> bytes:
        failed = self._response("failed", self._items("incomplete"))
        failed["error"] = {
            "code": "server_error",
            "message": "The server had an error while processing your request.",
        }
        return self._event("response.failed", {"response": failed})

    def body(self) -> bytes:
        status = self._status()
        return dumps(self._response(status, self._items(status)))

    def body_keepalive(self) -> bytes:
        return b""


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
