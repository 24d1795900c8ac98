"""Regress checks, the JSON-schema subset, output hashes and the drift measure."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.regress.checks import (
    CheckTally,
    Output,
    ToolCall,
    output_hash,
    parse_json_output,
    run_checks,
)
from gateway.regress.drift import drift, words
from gateway.regress.schema import schema_problems, validate
from gateway.regress.suite import Check, parse_suite

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def checks(*items: dict[str, Any]) -> tuple[Check, ...]:
    return (
        parse_suite({"prompts": [{"id": "p", "prompt": "hi", "checks": list(items)}]})
        .prompts[0]
        .checks
    )


def results(output: Output, *items: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {r.name: (r.passed, r.detail) for r in run_checks(checks(*items), output)}


# -- JSON schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        ({"city": "Oslo"}, WEATHER, None),
        ({}, WEATHER, "$: missing required property 'city'"),
        ({"city": 3}, WEATHER, "$.city: expected string, got integer"),
        (3, {"type": "number"}, None),
        (3.0, {"type": "integer"}, None),
        (3.5, {"type": "integer"}, "$: expected integer, got number"),
        (True, {"type": "integer"}, "$: expected integer, got boolean"),
        (None, {"type": ["string", "null"]}, None),
        ([1, "a"], {"type": "array", "items": {"type": "integer"}}, "$[1]: expected integer"),
        ("b", {"enum": ["a", "b"]}, None),
        ("c", {"enum": ["a", "b"]}, "$: 'c' is not one of ['a', 'b']"),
        (1, {"enum": [True]}, "$: 1 is not one of [True]"),
        (1.0, {"enum": [1]}, None),
        (
            {"a": 1, "b": 2},
            {"properties": {"a": {}}, "additionalProperties": False},
            "$: unexpected",
        ),
        (
            {"items": [{"n": "x"}]},
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"properties": {"n": {"type": "number"}}}}
                },
            },
            "$.items[0].n: expected number, got string",
        ),
    ],
)
def test_validate(value: Any, schema: dict[str, Any], problem: str | None) -> None:
    found = validate(value, schema)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_schema_problems_name_their_path() -> None:
    assert schema_problems(WEATHER, "s") == []
    assert schema_problems({"title": "t", "description": "d", "$schema": "x"}, "s") == []
    found = schema_problems(
        {"type": "object", "properties": {"a": {"type": "text"}, "b": 3}, "required": "a"}, "s"
    )
    assert found == [
        "s.properties.a.type: must be one of object, array, string, number, integer, boolean,"
        " null (or a list of them)",
        "s.properties.b: must be a mapping (a JSON schema)",
        "s.required: must be a list of property names",
    ]
    assert schema_problems({"pattern": "x"}, "s")[0].startswith(
        "s.pattern: unsupported JSON-schema keyword"
    )


# -- checks -----------------------------------------------------------------------------


def test_text_checks() -> None:
    out = Output("The capital of France is Paris.", ttft_ms=120.0, completion_tokens=7)
    found = results(
        out,
        {"contains": "Paris"},
        {"contains": ["paris", "france"], "ignore_case": True},
        {"contains": ["Paris", "Lyon"]},
        {"not_contains": "Lyon"},
        {"not_contains": "paris", "ignore_case": True},
        {"exact": " The capital of France is Paris. "},
        {"exact": "Paris"},
        {"regex": r"\bParis\.$"},
        {"regex": "^paris"},
        {"max_ttft_ms": 150},
        {"max_ttft_ms": 100},
        {"max_tokens": 7},
        {"max_tokens": 6},
    )
    assert found == {
        "contains[0]": (True, ""),
        "contains[1]": (True, ""),
        "contains[2]": (False, "missing 'Lyon'"),
        "not_contains[0]": (True, ""),
        "not_contains[1]": (False, "contains 'paris'"),
        "exact[0]": (True, ""),
        "exact[1]": (False, "expected exactly 'Paris', got 'The capital of France is Paris.'"),
        "regex[0]": (True, ""),
        "regex[1]": (False, "no match for /^paris/"),
        "max_ttft_ms[0]": (True, ""),
        "max_ttft_ms[1]": (False, "TTFT 120 ms > 100 ms"),
        "max_tokens[0]": (True, ""),
        "max_tokens[1]": (False, "7 completion tokens > 6"),
    }
    assert results(Output("x"), {"max_ttft_ms": 5}) == {"max_ttft_ms": (False, "no TTFT measured")}


def test_json_schema_check() -> None:
    schema = {"json_schema": {"type": "object", "required": ["city"]}}
    assert results(Output('{"city": "Oslo"}'), schema) == {"json_schema": (True, "")}
    fenced = '```json\n{"city": "Oslo"}\n```'
    assert results(Output(fenced), schema) == {"json_schema": (True, "")}
    assert results(Output('{"town": "Oslo"}'), schema) == {
        "json_schema": (False, "schema: $: missing required property 'city'")
    }
    assert results(Output("Oslo, 3 degrees"), schema) == {
        "json_schema": (False, "output is not JSON: 'Oslo, 3 degrees'")
    }
    assert parse_json_output("```\n[1, 2]\n```") == [1, 2]


def test_tool_call_check() -> None:
    good = Output("", (ToolCall("get_weather", '{"city": "Oslo"}'),))
    bad_args = Output("", (ToolCall("get_weather", '{"town": "Oslo"}'),))
    not_json = Output("", (ToolCall("get_weather", '{"city": '),))
    other = Output("", (ToolCall("lookup", "{}"), ToolCall("search", "{}")))
    spec = {"tool_call": {"name": "get_weather", "arguments_schema": WEATHER}}
    assert results(good, spec) == {"tool_call": (True, "")}
    assert results(bad_args, spec) == {
        "tool_call": (False, "arguments of 'get_weather': $: missing required property 'city'")
    }
    assert results(not_json, spec)["tool_call"][1].startswith(
        "arguments of 'get_weather' are not JSON"
    )
    assert results(other, spec) == {
        "tool_call": (False, "no call of 'get_weather' (called: lookup, search)")
    }
    assert results(Output("sunny"), spec) == {"tool_call": (False, "no tool call in the answer")}
    assert results(other, {"tool_call": None}) == {"tool_call": (True, "")}
    two = Output("", (ToolCall("get_weather", "{}"), ToolCall("get_weather", '{"city": "A"}')))
    assert results(two, spec) == {"tool_call": (True, "")}  # any matching call will do


def test_tally_passes_only_when_every_run_passed() -> None:
    tally = CheckTally("contains", "contains")
    assert not tally.passed  # never ran
    (ok,) = run_checks(checks({"contains": "a"}), Output("a"))
    (bad,) = run_checks(checks({"contains": "a"}), Output("b"))
    tally.add(ok)
    assert tally.passed
    tally.add(bad)
    tally.add(ok)
    assert not tally.passed and (tally.passes, tally.runs) == (2, 3)
    assert tally.detail == "missing 'a'"


# -- hashes and drift -------------------------------------------------------------------


def test_output_hash() -> None:
    assert output_hash(Output("hi")) == output_hash(Output("hi", ttft_ms=5.0))
    assert output_hash(Output("hi")) != output_hash(Output("hi "))
    spaced = Output("", (ToolCall("f", '{"b": 1,  "a": 2}'),))
    tight = Output("", (ToolCall("f", '{"a":2,"b":1}'),))
    assert output_hash(spaced) == output_hash(tight)  # arguments are canonicalized
    assert output_hash(tight) != output_hash(Output("", (ToolCall("g", '{"a":2,"b":1}'),)))
    assert output_hash(Output("x")).startswith("sha256:") and len(output_hash(Output("x"))) == 71
    assert tight.rendered() == 'f({"a":2,"b":1})'


def test_drift_measure() -> None:
    assert words("Hello, World! it's 42") == ["hello", "world", "it", "s", "42"]
    assert drift("The capital is Paris.", "the capital is paris") == 0.0  # case, punctuation
    assert drift("", "") == 0.0
    assert drift("anything", "") == 1.0
    assert drift("alpha beta", "gamma delta") == 1.0
    # one word of four replaced: ratio 2*3/8 -> drift 0.25
    assert drift("the cat sat down", "the dog sat down") == 0.25
    # order matters: the same words reshuffled drift
    assert drift("a b c d", "d c b a") > 0.5
    assert drift("a b", "b a") == drift("b a", "a b")
    # the threshold scale used by regress (0.3): a small edit passes, a new answer does not
    base = "The capital of France is Paris. It lies on the Seine."
    assert drift(base, "The capital of France is Paris, on the river Seine.") < 0.3
    assert drift(base, "Lyon is a city in France.") > 0.3
