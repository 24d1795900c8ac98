"""Regress suites: parsing, defaults, and path-named problems for every kind of mistake."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.regress.runner import TargetError, plan_jobs
from gateway.regress.suite import Suite, SuiteError, ToolCallSpec, load_suite, parse_suite


def problems(data: Any) -> list[str]:
    with pytest.raises(SuiteError) as info:
        parse_suite(data)
    return info.value.problems


def test_prompt_shorthand_defaults_and_check_names() -> None:
    suite = parse_suite(
        {
            "targets": ["a"],
            "params": {"temperature": 0, "max_tokens": 50},
            "thresholds": {"ttft": 0.5, "ttft_min_ms": 10},
            "prompts": [
                {
                    "id": "capital",
                    "system": "Answer in one word.",
                    "prompt": "Capital of France?",
                    "params": {"max_tokens": 5},
                    "checks": [
                        {"contains": "Paris"},
                        {"contains": ["Par", "is"], "ignore_case": True},
                        {"regex": "^paris", "ignore_case": True, "name": "starts"},
                        {"max_ttft_ms": 800},
                        {"tool_call": "lookup"},
                    ],
                },
                {"id": 7, "messages": [{"role": "user", "content": "hi"}], "targets": ["b"]},
            ],
        }
    )
    first, second = suite.prompts
    assert first.messages == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert first.params == {"temperature": 0, "max_tokens": 5}
    assert [c.name for c in first.checks] == [
        "contains[0]",
        "contains[1]",
        "starts",
        "max_ttft_ms",
        "tool_call",
    ]
    assert first.checks[2].value.flags & re.IGNORECASE
    assert first.checks[4].value == ToolCallSpec(name="lookup")
    assert first.targets is None and suite.targets == ("a",)
    assert second.id == "7" and second.targets == ("b",) and second.checks == ()
    assert suite.thresholds == {"ttft": 0.5, "ttft_min_ms": 10.0}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            {"id": "x", "prompt": "hi", "checks": [{"regex": "(unclosed"}]},
            "prompts[0].checks[0].regex: invalid regular expression: missing ), unterminated",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"contains": "a", "regex": "b"}]},
            "prompts[0].checks[0]: needs exactly one check",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"contain": "a"}]},
            "prompts[0].checks[0].contain: unknown key (did you mean 'contains'?)",
        ),
        (
            {
                "id": "x",
                "prompt": "hi",
                "checks": [{"json_schema": {"type": "object", "minProperties": 1}}],
            },
            "prompts[0].checks[0].json_schema.minProperties: unsupported JSON-schema keyword",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"json_schema": {"type": "obj"}}]},
            "prompts[0].checks[0].json_schema.type: must be one of object",
        ),
        (
            {
                "id": "x",
                "prompt": "hi",
                "checks": [{"tool_call": {"name": "f", "arguments_schema": {"items": 3}}}],
            },
            "prompts[0].checks[0].tool_call.arguments_schema.items: must be a mapping",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"max_ttft_ms": 0}]},
            "prompts[0].checks[0].max_ttft_ms: must be a number of milliseconds > 0",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"max_tokens": 1.5}]},
            "prompts[0].checks[0].max_tokens: must be an integer >= 1",
        ),
        (
            {"id": "x", "prompt": "hi", "checks": [{"max_tokens": 3, "ignore_case": True}]},
            "prompts[0].checks[0].ignore_case: only for exact, contains, not_contains, regex",
        ),
        (
            {"id": "x", "prompt": "hi", "params": {"temprature": 1}},
            "prompts[0].params.temprature: unknown request parameter (did you mean 'temperature'?)",
        ),
        (
            {"id": "x", "prompt": "hi", "params": {"temperature": 5}},
            "prompts[0].params.temperature: must be a number between 0 and 2",
        ),
        (
            {"id": "x", "prompt": "hi", "params": {"tools": [{"type": "function"}]}},
            "prompts[0].params.tools[0].function.name: is required",
        ),
        (
            {"id": "x", "messages": [{"role": "robot", "content": "hi"}]},
            "prompts[0].messages[0].role: must be one of",
        ),
        (
            {"id": "x", "system": "be brief", "messages": [{"role": "user"}]},
            "prompts[0].messages[0].content: is required",
        ),
        ({"id": "x"}, "prompts[0]: needs exactly one of `prompt`"),
        ({"id": "x", "prompt": "a", "messages": []}, "prompts[0]: needs exactly one of"),
        ({"prompt": "hi"}, "prompts[0].id: is required"),
        ({"id": "bad id!", "prompt": "hi"}, "prompts[0].id: is required"),
        ({"id": "x", "prompt": "hi", "targets": []}, "prompts[0].targets: must be a non-empty"),
        ({"id": "x", "prompt": "hi", "targets": ["route:"]}, "prompts[0].targets[0]: 'route:'"),
        ({"id": "x", "prompt": "hi", "colour": 1}, "prompts[0].colour: unknown key"),
    ],
)
def test_problems_are_path_named(prompt: dict[str, Any], expected: str) -> None:
    found = problems({"prompts": [prompt]})
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "prompts": [
                {"id": "a", "prompt": "hi", "checks": [{"regex": "("}]},
                {"id": "a", "prompt": "hi"},
                "nope",
            ],
            "thresholds": {"ttft": -1, "latency": 1},
            "params": {"max_token": 5},
            "extra": 1,
        }
    )
    assert "prompts[1].id: duplicate id 'a' (also prompts[0])" in found
    assert any(p.startswith("prompts[0].checks[0].regex:") for p in found)
    assert any(p.startswith("prompts[2]: must be a mapping") for p in found)
    assert "thresholds.ttft: must be a number >= 0, got -1" in found
    assert any(p.startswith("thresholds.latency: unknown key") for p in found)
    assert any(p.startswith("extra: unknown key") for p in found)
    assert "params.max_token: unknown request parameter (did you mean 'max_tokens'?)" in found
    assert not any(p.startswith("prompts[1].params") for p in found)


def test_duplicate_check_names_and_empty_suite() -> None:
    found = problems(
        {
            "prompts": [
                {
                    "id": "a",
                    "prompt": "hi",
                    "checks": [{"contains": "x", "name": "n"}, {"regex": "y", "name": "n"}],
                }
            ]
        }
    )
    assert "prompts[0].checks[1].name: duplicate check name 'n'" in found
    assert problems({"prompts": []}) == ["prompts: must be a non-empty list of prompts"]
    assert problems([1, 2])[0].endswith("a suite must be a mapping with a `prompts:` list")


def test_load_suite_reads_yaml_and_resolves_config(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("config: gw.yaml\nprompts:\n  - id: a\n    prompt: hi\n")
    suite = load_suite(path)
    assert suite.config == str(tmp_path / "gw.yaml")
    path.write_text("prompts:\n  - id: a\n    id: b\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "duplicate key" in str(info.value)
    with pytest.raises(SuiteError) as info:
        load_suite(tmp_path / "missing.yaml")
    assert "cannot read" in str(info.value)


def config() -> Any:
    return parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "deployments": {
                "a": {"provider": "p", "model": "a"},
                "b": {"provider": "p", "model": "b"},
            },
            "routes": {"chat": {"strategy": "race", "deployments": ["a", "b"]}},
        },
        env={},
    )


def test_targets_resolve_like_a_client_model_and_default_to_all_deployments() -> None:
    suite = Suite(parse_suite({"prompts": [{"id": "x", "prompt": "hi"}]}).prompts)
    jobs = plan_jobs(suite, config(), repeat=2)
    assert [(j.target.name, j.repeat) for j in jobs] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert jobs[1].target.kind == "deployment"  # default targets are the deployments
    suite = parse_suite(
        {
            "targets": ["chat", "b", "deployment:b", "route:chat", "chat"],
            "prompts": [{"id": "x", "prompt": "hi"}],
        }
    )
    targets = [j.target for j in plan_jobs(suite, config(), repeat=1)]
    assert [(t.name, t.kind) for t in targets] == [
        ("chat", "route"),
        ("b", "deployment"),
        ("deployment:b", "deployment"),
        ("route:chat", "route"),
    ]
    assert targets[0].route.strategy == "race" and not targets[0].route.direct
    assert targets[2].route.deployments[0].name == "b" and targets[2].route.direct
    assert targets[2].route.strategy == "fallback" and targets[2].route.k == 1


def test_unknown_targets_are_named_by_their_suite_path() -> None:
    suite = parse_suite(
        {
            "targets": ["chta"],
            "prompts": [
                {"id": "x", "prompt": "hi"},
                {"id": "y", "prompt": "hi", "targets": ["a", "deployment:chat", "route:a"]},
            ],
        }
    )
    with pytest.raises(TargetError) as info:
        plan_jobs(suite, config(), repeat=1)
    assert info.value.problems == [
        "targets[0]: unknown target 'chta': not a route or deployment of the gateway config"
        " (did you mean 'chat'?)",
        "prompts[1].targets[1]: unknown deployment 'chat'",
        "prompts[1].targets[2]: unknown route 'a'",
    ]


ROOT = Path(__file__).resolve().parents[2]


def doc_block(first_line: str) -> str:
    text = (ROOT / "docs" / "regress.md").read_text(encoding="utf-8")
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no yaml block starting with {first_line!r}")


def test_the_documented_example_suite_and_config_are_valid() -> None:
    import yaml

    from gateway.sim.config import parse_sim_config

    gateway_doc = yaml.safe_load(doc_block("# gateway.yaml"))
    sim, problems = parse_sim_config(gateway_doc["sim"])
    assert sim is not None, problems
    gw = parse_config(gateway_doc, env={})
    suite = parse_suite(yaml.safe_load(doc_block("# suite.yaml")))
    jobs = plan_jobs(suite, gw, repeat=3)
    assert len(jobs) == 21  # the 7 cells x 3 repeats the doc shows
    assert {c.kind for p in suite.prompts for c in p.checks} == {
        "contains",
        "not_contains",
        "regex",
        "max_ttft_ms",
        "max_tokens",
        "tool_call",
        "json_schema",
    }


def test_the_example_ci_job_runs_regress_and_keeps_the_report() -> None:
    import yaml

    job = yaml.safe_load((ROOT / ".ci" / "regress-example.yml").read_text(encoding="utf-8"))
    steps = job["jobs"]["regress"]["steps"]
    run = next(s["run"] for s in steps if s.get("name") == "Regression suite")
    assert "race-gateway regress" in run and "--suite" in run and "--markdown" in run
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"
