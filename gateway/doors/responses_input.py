"""Responses `input` items -> OpenAI Chat messages (the shape every provider adapter takes).

Messages keep their role; text parts become text, `input_image` an `image_url` part;
`function_call` items join the assistant turn before them as `tool_calls`, and
`function_call_output` items become `tool` messages; `reasoning` items are dropped (no
chat upstream takes them back) and an `item_reference` is mapped as the item it names.
Every shape an adapter could trip over is a 400 naming the item's path here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.model import LimitsConfig
from gateway.doors.bounds import MAX_MESSAGE_CHARS, bad, depth_limit, embedded_too_deep
from gateway.rejection import Rejected

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text")


class InputReader:
    """`input` -> chat messages. Consecutive function_call items join the assistant
    message before them (one assistant turn with several tool calls, as every provider
    expects); reasoning items are dropped (no chat upstream takes them back)."""

    def __init__(
        self, limits: LimitsConfig, items: Mapping[str, dict[str, Any]] | None = None
    ) -> None:
        self.limits = limits
        self.depth = depth_limit(limits)
        self.items = items
        self.references: list[str] = []
        self.out: list[dict[str, Any]] = []

    def messages(self, value: Any) -> list[dict[str, Any]]:
        if value is None:
            raise bad("'input' is required (a string or an array of input items)", "input")
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if not isinstance(value, list):
            raise bad("'input' must be a string or an array of input items", "input")
        if not value:
            raise bad("'input' must contain at least one item", "input", "empty_array")
        if len(value) > self.limits.max_messages:
            raise bad(
                f"'input' has more than {self.limits.max_messages} items",
                "input",
                "array_above_max_length",
            )
        for i, item in enumerate(value):
            self._item(item, f"input[{i}]")
        return self.out

    def _item(self, item: Any, at: str) -> None:
        if not isinstance(item, dict):
            raise bad(f"'{at}' must be an object", at)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            self._message(item, at)
        elif kind == "function_call":
            self._function_call(item, at)
        elif kind == "function_call_output":
            self._function_output(item, at)
        elif kind == "reasoning":
            return
        elif kind == "item_reference":
            self._reference(item, at)
        elif isinstance(kind, str):
            raise bad(
                f"'{at}.type' is '{kind}': the gateway takes message, function_call, "
                "function_call_output and reasoning items",
                f"{at}.type",
                "unsupported_value",
            )
        else:
            raise bad(f"'{at}' must have a 'type' (or a 'role' for a message)", at)

    def _reference(self, item: dict[str, Any], at: str) -> None:
        """An earlier output item by id (the Vercel AI SDK sends these for assistant turns
        unless its `store` option is false): mapped as if it had been sent inline."""
        ref = item.get("id")
        if not isinstance(ref, str) or not ref:
            raise bad(f"'{at}.id' must name an output item", f"{at}.id")
        if ref.startswith("rs_"):
            return  # a reasoning item: dropped like one sent inline
        if self.items is None:
            self.references.append(ref)
            return
        target = self.items.get(ref)
        if target is None or target.get("type") not in ("message", "function_call"):
            raise Rejected(
                404,
                f"Item with id '{ref[:64]}' not found: an item_reference needs the response "
                "that made it stored (store: true, or responses.store_by_default in the "
                "gateway's config); or send the item itself (Vercel AI SDK: "
                "providerOptions.openai.store = false)",
                "invalid_request_error",
                "item_not_found",
                f"{at}.id",
            )
        self._item(target, at)

    def _message(self, item: dict[str, Any], at: str) -> None:
        role = item.get("role")
        if role not in MESSAGE_ROLES:
            raise bad(f"'{at}.role' must be one of {', '.join(MESSAGE_ROLES)}", f"{at}.role")
        content = self._content(item.get("content"), f"{at}.content", role)
        self._check_chars(content, at)
        self.out.append({"role": role, "content": content})

    def _content(self, content: Any, at: str, role: str) -> str | list[dict[str, Any]]:
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise bad(f"'{at}' must be a string or an array of content parts", at)
        if not content:
            raise bad(f"'{at}' must contain at least one content part", at, "empty_array")
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(content):
            parts.append(self._part(part, f"{at}[{j}]"))
        if all(p["type"] == "text" for p in parts) and (role == "assistant" or len(parts) == 1):
            return "".join(p["text"] for p in parts)  # plain text: what every adapter takes
        return parts

    def _part(self, part: Any, at: str) -> dict[str, Any]:
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad(f"'{at}' must be an object with a 'type'", at)
        kind = part["type"]
        if kind in TEXT_PARTS or kind == "refusal":
            key = "refusal" if kind == "refusal" else "text"
            text = part.get(key)
            if not isinstance(text, str):
                raise bad(f"'{at}.{key}' must be a string", f"{at}.{key}")
            return {"type": "text", "text": text}
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise bad(
                    f"'{at}.image_url' must be a URL or data URL (file_id is not supported)",
                    f"{at}.image_url",
                )
            image: dict[str, Any] = {"url": url}
            detail = part.get("detail")
            if detail is not None:
                if detail not in ("low", "high", "auto"):
                    raise bad(f"'{at}.detail' must be low, high or auto", f"{at}.detail")
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        raise bad(
            f"'{at}.type' is '{kind}': content parts may be input_text, input_image, "
            "output_text or refusal (files and audio are not supported)",
            f"{at}.type",
            "unsupported_value",
        )

    def _function_call(self, item: dict[str, Any], at: str) -> None:
        call_id, name, arguments = (item.get(k) for k in ("call_id", "name", "arguments"))
        for key, value in (("call_id", call_id), ("name", name)):
            if not isinstance(value, str) or not value:
                raise bad(f"'{at}.{key}' is required and must be a non-empty string", f"{at}.{key}")
        if not isinstance(arguments, str):
            raise bad(f"'{at}.arguments' must be a string of JSON text", f"{at}.arguments")
        if embedded_too_deep(arguments, self.depth):
            raise bad(
                f"'{at}.arguments' holds JSON nested deeper than the limit of {self.depth}",
                f"{at}.arguments",
                "json_too_deep",
            )
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            self._check_chars(last.get("content"), at, last["tool_calls"])
        else:
            self.out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            self._check_chars(None, at, [call])

    def _function_output(self, item: dict[str, Any], at: str) -> None:
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"'{at}.call_id' is required and must be a non-empty string", f"{at}.call_id")
        if isinstance(output, list):
            texts = []
            for j, part in enumerate(output):
                converted = self._part(part, f"{at}.output[{j}]")
                if converted["type"] != "text":
                    raise bad(
                        f"'{at}.output[{j}]': tool outputs may only hold text",
                        f"{at}.output[{j}].type",
                        "unsupported_value",
                    )
                texts.append(converted["text"])
            output = "".join(texts)
        if not isinstance(output, str):
            raise bad(f"'{at}.output' must be a string or an array of text parts", f"{at}.output")
        if embedded_too_deep(output, self.depth):
            raise bad(
                f"'{at}.output' holds JSON nested deeper than the limit of {self.depth}",
                f"{at}.output",
                "json_too_deep",
            )
        self._check_chars(output, at)
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _check_chars(
        self, content: Any, at: str, calls: list[dict[str, Any]] | None = None
    ) -> None:
        if isinstance(content, str):
            chars = len(content)
        else:
            chars = sum(len(p.get("text", "")) for p in content or ())
        chars += sum(len(c["function"]["arguments"]) for c in calls or ())
        if chars > MAX_MESSAGE_CHARS:
            raise bad(
                f"'{at}' is too long: {chars} characters, the limit is {MAX_MESSAGE_CHARS}",
                at,
                "string_above_max_length",
            )
