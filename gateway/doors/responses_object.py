"""The Responses API's objects as plain dicts: the Response envelope, its usage, output items
and the error shapes. Shared by the stream encoder, the non-stream assembler and the store;
`openai.types.responses` is the schema they are tested against."""

from __future__ import annotations

from typing import Any

from gateway.doors.responses_parse import ResponsesContext
from gateway.streaming.events import UpstreamError, Usage

# finish reason -> incomplete_details.reason; every other finish completes the response
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def error_body(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope, the Responses door's error shape for HTTP errors."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_object(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": 0},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.prompt + usage.completion,
    }


def failure_code(error: UpstreamError) -> str:
    """`response.error.code` takes a closed set of values (openai.types.responses.ResponseError)."""
    return "rate_limit_exceeded" if error.status == 429 else "server_error"


def response_object(
    response_id: str,
    created: int,
    model: str,
    ctx: ResponsesContext,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": (
            {"reason": incomplete_reason} if incomplete_reason is not None else None
        ),
        "instructions": ctx.instructions,
        "max_output_tokens": ctx.max_output_tokens,
        "metadata": ctx.metadata,
        "model": model,
        "output": output,
        "parallel_tool_calls": ctx.parallel_tool_calls,
        "previous_response_id": ctx.previous_response_id,
        "reasoning": {"effort": ctx.reasoning_effort, "summary": None},
        "store": bool(ctx.store),
        "temperature": ctx.temperature,
        "text": {"format": ctx.text_format},
        "tool_choice": ctx.tool_choice,
        "tools": ctx.tools,
        "top_p": ctx.top_p,
        "truncation": "disabled",
        "usage": usage,
        "user": ctx.user,
    }


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [output_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def reasoning_item(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": content}


def function_call_item(
    item_id: str, status: str, call_id: str, name: str, arguments: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
