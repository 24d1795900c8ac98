"""Regression suites: canonical prompts with checks, read from YAML and validated up front.

`parse_suite` looks at the whole tree and raises one `SuiteError` listing every
problem with its path, the way the gateway config does
(`prompts[2].checks[0].regex: invalid regular expression: ...`).
Targets are checked against the gateway config later (`resolve_targets` in
the runner), since the suite is loaded before the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

import orjson

from gateway.config.model import LimitsConfig
from gateway.config.validate import ConfigFileError, read_yaml, show, suggest
from gateway.doors.chat_parse import parse_chat_request
from gateway.regress.schema import schema_problems
from gateway.rejection import Rejected
from gateway.request import KNOWN_FIELDS
from gateway.value_class import value_class

CHECK_KINDS = (
    "exact",
    "contains",
    "not_contains",
    "regex",
    "json_schema",
    "tool_call",
    "max_ttft_ms",
    "max_tokens",
)
TEXT_KINDS = ("exact", "contains", "not_contains", "regex")
PARAMS = tuple(sorted(KNOWN_FIELDS - {"model", "messages", "stream", "stream_options"}))
THRESHOLDS = ("ttft", "cost", "drift", "ttft_min_ms")
TARGET_PREFIXES = ("deployment:", "route:")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*\Z")
_MESSAGE_INDEX = re.compile(r"messages\[(\d+)\]")


class SuiteError(ValueError):
    """The suite is invalid; `problems` holds one path-named message per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


@value_class
class ToolCallSpec:
    name: str | None = None
    arguments_schema: Mapping[str, Any] | None = None


@value_class
class Check:
    """One check of a prompt. `value` by kind: exact/contains/not_contains: tuple of
    strings; regex: compiled pattern; json_schema: schema; tool_call: ToolCallSpec;
    max_ttft_ms: float; max_tokens: int."""

    name: str
    kind: str
    value: Any
    ignore_case: bool = False

    def describe(self) -> str:
        if self.kind == "regex":
            return f"regex /{self.value.pattern}/"
        if self.kind in ("exact", "contains", "not_contains"):
            return f"{self.kind} " + ", ".join(repr(v) for v in self.value)
        if self.kind == "tool_call":
            return f"tool_call {self.value.name or '(any)'}"
        if self.kind in ("max_ttft_ms", "max_tokens"):
            return f"{self.kind} {self.value:g}"
        return self.kind


@value_class
class PromptSpec:
    id: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    extra_body: dict[str, Any]
    checks: tuple[Check, ...]
    targets: tuple[str, ...] | None  # None: the suite's targets (default: every deployment)
    path: str  # "prompts[2]", for messages about this prompt


@value_class
class Suite:
    prompts: tuple[PromptSpec, ...]
    targets: tuple[str, ...] | None = None
    config: str | None = None  # gateway config named by the suite (resolved path)
    thresholds: dict[str, float] = field(default_factory=dict)
    source: str = "<suite>"


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file. Raises SuiteError (file, YAML or content problems)."""
    try:
        data = read_yaml(path)
    except ConfigFileError as exc:
        raise SuiteError(exc.problems) from None
    return parse_suite(data, source=str(path), base=Path(path).parent)


def parse_suite(data: Any, source: str = "<suite>", base: Path | None = None) -> Suite:
    out = _Problems()
    if not isinstance(data, Mapping):
        raise SuiteError([f"{source}: a suite must be a mapping with a `prompts:` list"])
    _unknown(data, ("prompts", "targets", "params", "config", "thresholds"), "", out)
    targets = _targets(data.get("targets"), "targets", out)
    defaults = data.get("params") or {}
    if not isinstance(defaults, Mapping):
        out.add("params", f"must be a mapping of request parameters, got {show(defaults)}")
        defaults = {}
    for key in [k for k in defaults if k not in PARAMS]:
        hint = suggest(str(key), PARAMS) or " (provider-specific fields go in extra_body)"
        out.add(f"params.{key}", "unknown request parameter" + hint)
    defaults = {k: v for k, v in defaults.items() if k in PARAMS}
    config = data.get("config")
    config_path: str | None = None
    if config is not None:
        if not isinstance(config, str) or not config.strip():
            out.add("config", f"must be the path of a gateway config file, got {show(config)}")
        else:
            config_path = str((base or Path(".")) / config)
    thresholds = _thresholds(data.get("thresholds"), out)
    raw_prompts = data.get("prompts")
    prompts: list[PromptSpec] = []
    if not isinstance(raw_prompts, list) or not raw_prompts:
        out.add("prompts", "must be a non-empty list of prompts")
    else:
        seen: dict[str, str] = {}
        for i, raw in enumerate(raw_prompts):
            ident = raw.get("id") if isinstance(raw, Mapping) else None
            if isinstance(ident, str | int) and not isinstance(ident, bool):
                if str(ident) in seen:
                    out.add(f"prompts[{i}].id", f"duplicate id {ident!r} (also {seen[str(ident)]})")
                seen.setdefault(str(ident), f"prompts[{i}]")
            prompt = _prompt(raw, f"prompts[{i}]", defaults, out)
            if prompt is not None:
                prompts.append(prompt)
    if out.items:
        raise SuiteError(out.items)
    return Suite(tuple(prompts), targets, config_path, thresholds, source)


def _unknown(data: Mapping[Any, Any], allowed: Sequence[str], path: str, out: _Problems) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            out.add(where, "unknown key" + suggest(str(key), allowed))


def _targets(value: Any, path: str, out: _Problems) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        out.add(path, "must be a non-empty list of deployment or route names")
        return None
    ok = True
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            out.add(f"{path}[{i}]", f"must be a deployment or route name, got {show(item)}")
            ok = False
        elif item.startswith(TARGET_PREFIXES) and not item.partition(":")[2]:
            out.add(f"{path}[{i}]", f"{item!r} names no deployment or route")
            ok = False
    return tuple(value) if ok else None


def _thresholds(value: Any, out: _Problems) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        out.add("thresholds", "must be a mapping (ttft, cost, drift, ttft_min_ms)")
        return {}
    _unknown(value, THRESHOLDS, "thresholds", out)
    result: dict[str, float] = {}
    for key in THRESHOLDS:
        if key in value:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
                out.add(f"thresholds.{key}", f"must be a number >= 0, got {show(number)}")
            else:
                result[key] = float(number)
    return result


def _prompt(raw: Any, path: str, defaults: Mapping[str, Any], out: _Problems) -> PromptSpec | None:
    if not isinstance(raw, Mapping):
        out.add(path, "must be a mapping with id, prompt (or messages) and checks")
        return None
    before = len(out.items)
    allowed = ("id", "prompt", "system", "messages", "params", "extra_body", "checks", "targets")
    _unknown(raw, allowed, path, out)
    ident = raw.get("id")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or not _ID.match(str(ident)):
        out.add(
            f"{path}.id",
            f"is required: letters, digits and _ . : / - (got {show(ident)})",
        )
        ident = ""
    messages = _messages(raw, path, out)
    own = raw.get("params")
    if own is not None and not isinstance(own, Mapping):
        out.add(f"{path}.params", f"must be a mapping, got {show(own)}")
        own = None
    params = {**defaults, **(own or {})}
    extra = raw.get("extra_body") or {}
    if not isinstance(extra, Mapping):
        out.add(f"{path}.extra_body", f"must be a mapping, got {show(extra)}")
        extra = {}
    if messages is not None:
        shift = 1 if raw.get("system") and "messages" in raw else 0
        _check_params(params, messages, path, shift, out)
    checks = _checks(raw.get("checks"), f"{path}.checks", out)
    targets = _targets(raw.get("targets"), f"{path}.targets", out)
    if len(out.items) != before or messages is None:
        return None
    return PromptSpec(str(ident), messages, dict(params), dict(extra), checks, targets, path)


def _messages(raw: Mapping[str, Any], path: str, out: _Problems) -> list[dict[str, Any]] | None:
    has_prompt, has_messages = "prompt" in raw, "messages" in raw
    if has_prompt == has_messages:
        out.add(path, "needs exactly one of `prompt` (a user message) or `messages` (a list)")
        return None
    system = raw.get("system")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        out.add(f"{path}.system", f"must be a non-empty string, got {show(system)}")
        return None
    head = [{"role": "system", "content": system}] if system else []
    if has_prompt:
        prompt = raw["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            out.add(f"{path}.prompt", f"must be a non-empty string, got {show(prompt)}")
            return None
        return [*head, {"role": "user", "content": prompt}]
    messages = raw["messages"]
    if not isinstance(messages, list) or not messages:
        out.add(f"{path}.messages", "must be a non-empty list of {role, content} messages")
        return None
    return [*head, *messages]


def _check_params(
    params: Mapping[str, Any],
    messages: list[dict[str, Any]],
    path: str,
    shift: int,
    out: _Problems,
) -> None:
    """Unknown parameter names, then the gateway's own request validation."""
    ok = True
    for key in params:
        if key not in PARAMS:
            hint = suggest(str(key), PARAMS) or " (provider-specific fields go in extra_body)"
            out.add(f"{path}.params.{key}", "unknown request parameter" + hint)
            ok = False
    if not ok:
        return
    try:
        body = orjson.dumps({"model": "regress", "messages": messages, **params})
    except TypeError as exc:
        out.add(path, f"params and messages must be plain JSON values: {exc}")
        return
    try:
        parse_chat_request(body, LimitsConfig())
    except Rejected as exc:
        param = exc.param or "params"
        message = exc.message.removeprefix(f"'{param}' ")
        match = _MESSAGE_INDEX.match(param)
        if match:  # indices count the `system` shorthand; the suite's list does not
            index = int(match.group(1)) - shift
            rest = param[match.end() :]
            where = f"{path}.system" if index < 0 else f"{path}.messages[{index}]{rest}"
        elif param == "messages":
            where = f"{path}.messages"
        else:
            where = f"{path}.params.{param}"
        out.add(where, message)


def _checks(value: Any, path: str, out: _Problems) -> tuple[Check, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        out.add(path, "must be a list of checks")
        return ()
    parsed: list[tuple[str | None, str, Any, bool]] = []
    for i, raw in enumerate(value):
        item = _check(raw, f"{path}[{i}]", out)
        if item is not None:
            parsed.append(item)
    counts: dict[str, int] = {}
    for _, kind, _, _ in parsed:
        counts[kind] = counts.get(kind, 0) + 1
    seen: dict[str, int] = {}
    checks: list[Check] = []
    names: set[str] = set()
    for i, (name, kind, checked, ignore_case) in enumerate(parsed):
        n = seen.get(kind, 0)
        seen[kind] = n + 1
        label = name or (kind if counts[kind] == 1 else f"{kind}[{n}]")
        if label in names:
            out.add(f"{path}[{i}].name", f"duplicate check name {label!r}")
        names.add(label)
        checks.append(Check(label, kind, checked, ignore_case))
    return tuple(checks)


def _check(raw: Any, path: str, out: _Problems) -> tuple[str | None, str, Any, bool] | None:
    if not isinstance(raw, Mapping):
        out.add(path, "must be a mapping with one check: " + ", ".join(CHECK_KINDS))
        return None
    kinds = [k for k in raw if k in CHECK_KINDS]
    _unknown(raw, (*CHECK_KINDS, "name", "ignore_case"), path, out)
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        out.add(path, f"needs exactly one check ({', '.join(CHECK_KINDS)}); found {found}")
        return None
    kind = kinds[0]
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        out.add(f"{path}.name", f"must be a non-empty string, got {show(name)}")
    ignore_case = raw.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        out.add(f"{path}.ignore_case", f"must be true or false, got {show(ignore_case)}")
        ignore_case = False
    if "ignore_case" in raw and kind not in TEXT_KINDS:
        out.add(f"{path}.ignore_case", f"only for {', '.join(TEXT_KINDS)} checks")
    value = _check_value(kind, raw[kind], f"{path}.{kind}", ignore_case, out)
    if value is None:
        return None
    return (name if isinstance(name, str) else None), kind, value, ignore_case


def _check_value(kind: str, value: Any, path: str, ignore_case: bool, out: _Problems) -> Any:
    if kind in ("exact", "contains", "not_contains"):
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(s, str) and s for s in items)
        ):
            out.add(path, f"must be a non-empty string or list of strings, got {show(value)}")
            return None
        if kind == "exact" and len(items) != 1:
            out.add(path, "must be one string")
            return None
        return tuple(items)
    if kind == "regex":
        if not isinstance(value, str) or not value:
            out.add(path, f"must be a regular expression string, got {show(value)}")
            return None
        try:
            return re.compile(value, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            out.add(path, f"invalid regular expression: {exc}")
            return None
    if kind == "json_schema":
        problems = schema_problems(value, path)
        out.items.extend(problems)
        return None if problems else value
    if kind == "tool_call":
        return _tool_call(value, path, out)
    if kind == "max_ttft_ms":
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            out.add(path, f"must be a number of milliseconds > 0, got {show(value)}")
            return None
        return float(value)
    # max_tokens
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        out.add(path, f"must be an integer >= 1, got {show(value)}")
        return None
    return value


def _tool_call(value: Any, path: str, out: _Problems) -> ToolCallSpec | None:
    if isinstance(value, str) and value:
        return ToolCallSpec(name=value)
    if value is None:
        return ToolCallSpec()
    if not isinstance(value, Mapping):
        out.add(path, "must be a tool name or a mapping {name, arguments_schema}")
        return None
    _unknown(value, ("name", "arguments_schema"), path, out)
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        out.add(f"{path}.name", f"must be a non-empty string, got {show(name)}")
        return None
    schema = value.get("arguments_schema")
    if schema is not None:
        problems = schema_problems(schema, f"{path}.arguments_schema")
        if problems:
            out.items.extend(problems)
            return None
    return ToolCallSpec(name, schema)
