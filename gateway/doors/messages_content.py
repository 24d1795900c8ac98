"""Anthropic system, messages and tools -> OpenAI Chat messages and function tools.

`MessagesBuilder` also records what only Anthropic can take, by the path of the chat
element it belongs to (see `AnthropicNative`): cache_control and is_error in `decor`,
signed thinking blocks in `thinking`.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.doors.bounds import MAX_MESSAGE_CHARS, bad, embedded_too_deep

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control", "strict"})
# Custom-tool fields only Anthropic reads: kept for an Anthropic winner, dropped elsewhere.
ANTHROPIC_TOOL_KEYS = frozenset(
    {"allowed_callers", "defer_loading", "eager_input_streaming", "input_examples"}
)


class MessagesBuilder:
    """Anthropic system / messages / tools -> OpenAI Chat messages, plus the paths of what
    only Anthropic can take (see AnthropicNative)."""

    def __init__(self, max_messages: int, depth: int) -> None:
        self.max_messages = max_messages
        self.depth = depth
        self.messages: list[dict[str, Any]] = []
        self.decor: dict[str, dict[str, Any]] = {}
        self.thinking: dict[str, list[dict[str, Any]]] = {}

    def system(self, system: Any) -> None:
        if system is None or system == "":
            return
        if isinstance(system, str):
            self._add({"role": "system", "content": system}, len(system), "system")
            return
        if not isinstance(system, list):
            raise bad("system: must be a string or an array of text blocks", "system")
        parts: list[dict[str, Any]] = []
        marks: dict[int, dict[str, Any]] = {}
        for k, block in enumerate(system):
            at = f"system[{k}]"
            if _kind(block, at) != "text":
                raise bad(f"{at}.type: system blocks must be text blocks", f"{at}.type")
            parts.append(self._text(block, at))
            self._mark(block, at, marks, len(parts) - 1)
        if parts:
            chars = sum(len(p["text"]) for p in parts)
            self._add({"role": "system", "content": parts}, chars, "system", marks)

    def conversation(self, messages: Any) -> None:
        if messages is None:
            raise bad("messages: Field required", "messages")
        if not isinstance(messages, list) or not messages:
            raise bad("messages: must be a non-empty array of messages", "messages")
        if len(messages) > self.max_messages:
            raise bad(
                f"messages: more than {self.max_messages} messages",
                "messages",
                "array_above_max_length",
            )
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise bad(f"{where}: must be an object with role and content", where)
            role, content = message.get("role"), message.get("content")
            if role not in ("user", "assistant"):
                raise bad(f"{where}.role: must be 'user' or 'assistant'", f"{where}.role")
            if content is None:
                raise bad(f"{where}.content: Field required", f"{where}.content")
            if isinstance(content, str):
                self._add({"role": role, "content": content}, len(content), where)
            elif not isinstance(content, list):
                raise bad(
                    f"{where}.content: must be a string or an array of blocks", f"{where}.content"
                )
            elif role == "user":
                self._user(content, where)
            else:
                self._assistant(content, where)

    def _user(self, content: list[Any], where: str) -> None:
        parts: list[dict[str, Any]] = []
        marks: dict[int, dict[str, Any]] = {}
        chars = 0
        for j, block in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = _kind(block, at)
            if kind == "text":
                parts.append(self._text(block, at))
                chars += len(parts[-1]["text"])
            elif kind == "image":
                parts.append(_image(block, at))
            elif kind == "tool_result":
                self._tool_result(block, at)
                continue
            elif kind in ("tool_use", "thinking", "redacted_thinking"):
                raise bad(f"{at}.type: '{kind}' blocks belong in assistant turns", f"{at}.type")
            else:
                raise _unknown_block(kind, at)
            self._mark(block, at, marks, len(parts) - 1)
        if parts:
            self._add({"role": "user", "content": parts}, chars, where, marks)

    def _assistant(self, content: list[Any], where: str) -> None:
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, Any]] = []
        marks: dict[int, dict[str, Any]] = {}
        call_marks: dict[int, dict[str, Any]] = {}
        chars = 0
        for j, block in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = _kind(block, at)
            if kind == "text":
                parts.append(self._text(block, at))
                chars += len(parts[-1]["text"])
                self._mark(block, at, marks, len(parts) - 1)
            elif kind == "tool_use":
                calls.append(_tool_use(block, at))
                chars += len(calls[-1]["function"]["arguments"])
                self._mark(block, at, call_marks, len(calls) - 1)
            elif kind == "thinking":
                text, signature = block.get("thinking"), block.get("signature")
                if not isinstance(text, str) or not isinstance(signature, str):
                    raise bad(f"{at}: thinking and signature must be strings", at)
                if signature:  # only Anthropic's own, signed thinking can be sent back to it
                    thinking.append({"type": "thinking", "thinking": text, "signature": signature})
            elif kind == "redacted_thinking":
                data = block.get("data")
                if not isinstance(data, str):
                    raise bad(f"{at}.data: must be a string", f"{at}.data")
                thinking.append({"type": "redacted_thinking", "data": data})
            elif kind in ("image", "tool_result"):
                raise bad(f"{at}.type: '{kind}' blocks belong in user turns", f"{at}.type")
            else:
                raise _unknown_block(kind, at)
        message: dict[str, Any] = {"role": "assistant", "content": parts or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        path = self._add(message, chars, where, marks)
        for index, keys in call_marks.items():
            self.decor[f"{path}.tool_calls[{index}]"] = keys
        if thinking:
            self.thinking[path] = thinking

    def _tool_result(self, block: dict[str, Any], at: str) -> None:
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"{at}.tool_use_id: required (a non-empty string)", f"{at}.tool_use_id")
        content = block.get("content")
        parts: list[dict[str, Any]] = []
        marks: dict[int, dict[str, Any]] = {}
        if content is None:
            content = ""
        elif isinstance(content, list):
            for k, inner in enumerate(content):
                inner_at = f"{at}.content[{k}]"
                kind = _kind(inner, inner_at)
                if kind == "text":
                    parts.append(self._text(inner, inner_at))
                elif kind == "image":
                    parts.append(_image(inner, inner_at))
                else:
                    raise _unknown_block(kind, inner_at)
                self._mark(inner, inner_at, marks, len(parts) - 1)
            content = parts
        elif not isinstance(content, str):
            raise bad(f"{at}.content: must be a string or an array of blocks", f"{at}.content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in parts)
        if embedded_too_deep(text, self.depth):
            raise bad(
                f"{at}.content: holds JSON nested deeper than {self.depth} levels",
                f"{at}.content",
                "json_too_deep",
            )
        is_error = block.get("is_error")
        if is_error is not None and not isinstance(is_error, bool):
            raise bad(f"{at}.is_error: must be a boolean", f"{at}.is_error")
        message = {"role": "tool", "tool_call_id": call_id, "content": content}
        path = self._add(message, len(text), at, marks)
        keys = {"is_error": True} if is_error else {}
        if isinstance(block.get("cache_control"), dict):
            keys["cache_control"] = block["cache_control"]
        if keys:
            self.decor[path] = keys

    def tools(self, tools: Any, params: dict[str, Any]) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise bad("tools: must be an array of tools", "tools")
        out: list[dict[str, Any]] = []
        for i, tool in enumerate(tools):
            at = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise bad(f"{at}: must be an object", at)
            kind = tool.get("type")
            if kind not in (None, "custom"):
                raise bad(
                    f"{at}.type: Anthropic server tool '{kind}' is not supported by the gateway "
                    "(only custom tools with name, description and input_schema)",
                    f"{at}.type",
                    "unsupported_tool",
                )
            for key in tool:
                if key not in TOOL_KEYS and key not in ANTHROPIC_TOOL_KEYS:
                    raise bad(f"{at}.{key}: unknown tool field", f"{at}.{key}")
            name, schema = tool.get("name"), tool.get("input_schema")
            if not isinstance(name, str) or not name:
                raise bad(f"{at}.name: required (a non-empty string)", f"{at}.name")
            if not isinstance(schema, dict):
                raise bad(f"{at}.input_schema: required (a JSON schema)", f"{at}.input_schema")
            function: dict[str, Any] = {"name": name, "parameters": schema}
            description = tool.get("description")
            if description is not None:
                if not isinstance(description, str):
                    raise bad(f"{at}.description: must be a string", f"{at}.description")
                function["description"] = description
            if isinstance(tool.get("strict"), bool):
                function["strict"] = tool["strict"]
            out.append({"type": "function", "function": function})
            native = {key: tool[key] for key in ANTHROPIC_TOOL_KEYS if key in tool}
            cache = tool.get("cache_control")
            if cache is not None:
                native["cache_control"] = _cache_control(cache, at)
            if native:
                self.decor[at] = native
        if out:
            params["tools"] = out

    # --- helpers -----------------------------------------------------------------------

    def _add(
        self,
        message: dict[str, Any],
        chars: int,
        where: str,
        marks: dict[int, dict[str, Any]] | None = None,
    ) -> str:
        """Append a chat message; returns its path. `marks` are its parts' Anthropic keys."""
        if chars > MAX_MESSAGE_CHARS:
            raise bad(
                f"{where}: too long: {chars} characters, the limit is {MAX_MESSAGE_CHARS}",
                where,
                "string_above_max_length",
            )
        path = f"messages[{len(self.messages)}]"
        self.messages.append(message)
        for index, keys in (marks or {}).items():
            self.decor[f"{path}.content[{index}]"] = keys
        return path

    def _text(self, block: dict[str, Any], at: str) -> dict[str, Any]:
        text = block.get("text")
        if not isinstance(text, str):
            raise bad(f"{at}.text: must be a string", f"{at}.text")
        return {"type": "text", "text": text}

    def _mark(
        self, block: dict[str, Any], at: str, marks: dict[int, dict[str, Any]], index: int
    ) -> None:
        cache = block.get("cache_control")
        if cache is not None:
            marks[index] = {"cache_control": _cache_control(cache, at)}


def _kind(block: Any, at: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise bad(f"{at}: must be an object with a string 'type'", at)
    return kind


def _unknown_block(kind: str, at: str) -> Exception:
    return bad(
        f"{at}.type: content block type '{kind}' is not supported by the gateway",
        f"{at}.type",
        "unsupported_content",
    )


def _cache_control(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise bad(
            f'{at}.cache_control: must be an object like {{"type": "ephemeral"}}',
            f"{at}.cache_control",
        )
    return value


def _image(block: dict[str, Any], at: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")  # type: ignore[union-attr]
        if not isinstance(media_type, str) or media_type not in IMAGE_TYPES:
            raise bad(
                f"{at}.source.media_type: must be one of {', '.join(sorted(IMAGE_TYPES))}",
                f"{at}.source.media_type",
            )
        if not isinstance(data, str) or not data:
            raise bad(f"{at}.source.data: required (base64 text)", f"{at}.source.data")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        url = source.get("url")  # type: ignore[union-attr]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad(f"{at}.source.url: must be an http(s) URL", f"{at}.source.url")
        return {"type": "image_url", "image_url": {"url": url}}
    raise bad(
        f"{at}.source: must be a base64 or url image source", f"{at}.source", "unsupported_content"
    )


def _tool_use(block: dict[str, Any], at: str) -> dict[str, Any]:
    call_id, name, tool_input = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        raise bad(f"{at}.id: required (a non-empty string)", f"{at}.id")
    if not isinstance(name, str) or not name:
        raise bad(f"{at}.name: required (a non-empty string)", f"{at}.name")
    if not isinstance(tool_input, dict):
        raise bad(f"{at}.input: must be an object", f"{at}.input")
    arguments = orjson.dumps(tool_input).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
