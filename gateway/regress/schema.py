"""A small JSON-schema subset: enough to check a model's JSON output or tool-call arguments.

Supported keywords: `type` (a name or a list of names: object, array, string,
number, integer, boolean, null), `properties`, `required`, `items`, `enum`,
`additionalProperties` (true/false). Annotations (`title`, `description`,
`$schema`, `default`, `examples`, `$comment`) are accepted and ignored. Any
other keyword is rejected when the suite is loaded, so a check never silently
enforces less than it says.

`schema_problems(schema, path)` checks a schema itself (suite loading);
`validate(value, schema)` returns the first violation as "path: message", or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
KEYWORDS = ("type", "properties", "required", "items", "enum", "additionalProperties")
ANNOTATIONS = ("title", "description", "$schema", "default", "examples", "$comment")


def schema_problems(schema: Any, path: str) -> list[str]:
    """Every problem of `schema` itself, each prefixed with its path in the suite."""
    if not isinstance(schema, Mapping):
        return [f"{path}: must be a mapping (a JSON schema)"]
    problems: list[str] = []
    for key in schema:
        if key not in KEYWORDS and key not in ANNOTATIONS:
            problems.append(
                f"{path}.{key}: unsupported JSON-schema keyword (supported: {', '.join(KEYWORDS)})"
            )
    if "type" in schema:
        kinds = schema["type"]
        names = kinds if isinstance(kinds, list) else [kinds]
        if not names or any(not isinstance(n, str) or n not in TYPES for n in names):
            problems.append(f"{path}.type: must be one of {', '.join(TYPES)} (or a list of them)")
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            problems.append(f"{path}.properties: must be a mapping of name to schema")
        else:
            for name, sub in props.items():
                problems.extend(schema_problems(sub, f"{path}.properties.{name}"))
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        problems.append(f"{path}.required: must be a list of property names")
    if "items" in schema:
        problems.extend(schema_problems(schema["items"], f"{path}.items"))
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        problems.append(f"{path}.enum: must be a non-empty list")
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        problems.append(f"{path}.additionalProperties: must be true or false")
    return problems


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, kind: str) -> bool:
    actual = _type_name(value)
    if kind == "number":
        return actual in ("number", "integer")
    if kind == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == kind


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """The first way `value` violates `schema` ("$.city: expected string, got integer")."""
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, k) for k in kinds):
            return f"{path}: expected {' or '.join(kinds)}, got {_type_name(value)}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{path}: {_short(value)} is not one of {_short(schema['enum'])}"
    if isinstance(value, dict):
        for name in schema.get("required") or ():
            if name not in value:
                return f"{path}: missing required property {name!r}"
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name in value:
                problem = validate(value[name], sub, f"{path}.{name}")
                if problem is not None:
                    return problem
        if schema.get("additionalProperties") is False:
            extra = sorted(k for k in value if k not in props)
            if extra:
                return f"{path}: unexpected property {extra[0]!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            problem = validate(item, schema["items"], f"{path}[{i}]")
            if problem is not None:
                return problem
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    numeric = ("integer", "number")
    ta, tb = _type_name(a), _type_name(b)
    if ta in numeric and tb in numeric:
        return bool(a == b)
    return ta == tb and bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
