"""What one run produced (`Output`), its hash, and the checks of a suite applied to it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.regress.schema import validate
from gateway.regress.suite import Check, ToolCallSpec
from gateway.value_class import value_class

_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*\Z", re.DOTALL)


@value_class
class ToolCall:
    name: str
    arguments: str  # as the model produced it (JSON text, maybe invalid)


@value_class
class Output:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    ttft_ms: float | None = None
    completion_tokens: int = 0

    def rendered(self) -> str:
        """Text for drift and samples: the text, then one `name(arguments)` line per call."""
        calls = [f"{c.name}({_canonical_arguments(c.arguments)})" for c in self.tool_calls]
        return "\n".join(p for p in (self.text, *calls) if p)


@value_class
class CheckResult:
    name: str
    kind: str
    passed: bool
    detail: str = ""  # why it failed (empty when it passed)


def _canonical_arguments(arguments: str) -> str:
    try:
        return orjson.dumps(orjson.loads(arguments or "{}"), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments


def output_hash(output: Output) -> str:
    """sha256 of the text alone, or of {text, tool_calls} (arguments canonicalized) when the
    answer holds tool calls; so whitespace inside arguments does not change the hash."""
    if not output.tool_calls:
        data = output.text.encode()
    else:
        calls = [
            {"name": c.name, "arguments": _canonical_arguments(c.arguments)}
            for c in output.tool_calls
        ]
        data = orjson.dumps({"text": output.text, "tool_calls": calls})
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_json_output(text: str) -> Any:
    """The answer as JSON; a single surrounding ``` fence (```json) is removed first."""
    match = _FENCE.match(text)
    return orjson.loads(match.group(1) if match else text.strip())


def _fold(text: str, ignore_case: bool) -> str:
    return text.casefold() if ignore_case else text


def run_check(check: Check, output: Output) -> CheckResult:
    passed, detail = _evaluate(check, output)
    return CheckResult(check.name, check.kind, passed, "" if passed else detail)


def run_checks(checks: tuple[Check, ...], output: Output) -> list[CheckResult]:
    return [run_check(check, output) for check in checks]


def _evaluate(check: Check, output: Output) -> tuple[bool, str]:
    kind, value, text = check.kind, check.value, output.text
    if kind == "exact":
        want = value[0]
        ok = _fold(text.strip(), check.ignore_case) == _fold(want.strip(), check.ignore_case)
        return ok, f"expected exactly {_short(want)}, got {_short(text)}"
    if kind == "contains":
        haystack = _fold(text, check.ignore_case)
        missing = [s for s in value if _fold(s, check.ignore_case) not in haystack]
        return not missing, "missing " + ", ".join(_short(s) for s in missing)
    if kind == "not_contains":
        haystack = _fold(text, check.ignore_case)
        found = [s for s in value if _fold(s, check.ignore_case) in haystack]
        return not found, "contains " + ", ".join(_short(s) for s in found)
    if kind == "regex":
        return value.search(text) is not None, f"no match for /{value.pattern}/"
    if kind == "json_schema":
        try:
            data = parse_json_output(text)
        except orjson.JSONDecodeError:
            return False, f"output is not JSON: {_short(text)}"
        problem = validate(data, value)
        return problem is None, f"schema: {problem}"
    if kind == "tool_call":
        return _tool_call(value, output.tool_calls)
    if kind == "max_ttft_ms":
        if output.ttft_ms is None:
            return False, "no TTFT measured"
        return output.ttft_ms <= value, f"TTFT {output.ttft_ms:.0f} ms > {value:g} ms"
    if kind == "max_tokens":
        tokens = output.completion_tokens
        return tokens <= value, f"{tokens} completion tokens > {value}"
    raise ValueError(f"unknown check kind {kind!r}")  # pragma: no cover - suite validates


def _tool_call(spec: ToolCallSpec, calls: tuple[ToolCall, ...]) -> tuple[bool, str]:
    if not calls:
        return False, "no tool call in the answer"
    named = [c for c in calls if spec.name is None or c.name == spec.name]
    if not named:
        got = ", ".join(sorted({c.name for c in calls}))
        return False, f"no call of {spec.name!r} (called: {got})"
    if spec.arguments_schema is None:
        return True, ""
    problem = ""
    for call in named:
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            problem = f"arguments of {call.name!r} are not JSON: {_short(call.arguments)}"
            continue
        found = validate(arguments, spec.arguments_schema)
        if found is None:
            return True, ""
        problem = f"arguments of {call.name!r}: {found}"
    return False, problem


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@dataclass(slots=True)
class CheckTally:
    """One check over the repeats of a (prompt, target) cell: passes only if every run did."""

    name: str
    kind: str
    passes: int = 0
    runs: int = 0
    detail: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.runs > 0 and self.passes == self.runs

    def add(self, result: CheckResult) -> None:
        self.runs += 1
        if result.passed:
            self.passes += 1
        elif not self.detail:
            self.detail = result.detail
